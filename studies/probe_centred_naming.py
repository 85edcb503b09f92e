"""Eval-time probe (session 3): does subtracting the image's mean segment (uniform or area-weighted) before naming
make the object's group win over the background groups? Same question as emergence.naming_contrast, three ways.

    python studies/probe_centred_naming.py RUN_DIR
"""
import sys, torch, numpy as np, torch.nn.functional as F
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from pathlib import Path
import emergence
from groupvit.config import load_config
from groupvit.model import load_model
from groupvit.evaluation import load_eval_dataset
from groupvit.evaluation.grouping import ModelGrouper
from groupvit.evaluation.text import class_text_embeddings
from groupvit.evaluation.preprocess import normalize
torch.set_num_threads(1)
cfg = load_config(preset="default")
ds = load_eval_dataset("synthetic", Path("data/emergence") / emergence._world_key(cfg) / "val", split="val")
model = load_model(Path(sys.argv[1]) / "model.pt").eval()
text = F.normalize(class_text_embeddings(model, list(ds.class_names[1:]), cfg.eval.templates), dim=-1)
grouper = ModelGrouper(model, "hard")
res = {m: [0, 0] for m in ("raw", "centered_uniform", "centered_area")}
for i in range(100):
    item = ds[i]
    x = torch.from_numpy(np.array(item.image)).permute(2, 0, 1).float().div(255)
    g = grouper(normalize(x, cfg.data.augment.mean, cfg.data.augment.std)[None])
    owner = F.interpolate(g.pixel_to_group.float(), size=x.shape[-2:], mode="bilinear").argmax(1)[0].numpy()
    E = g.group_embeds[0]
    used = np.unique(owner)
    area = torch.tensor([(owner == k).mean() for k in range(E.shape[0])], dtype=E.dtype)
    variants = {"raw": E, "centered_uniform": E - E[used].mean(0), "centered_area": E - (area[:, None] * E).sum(0)}
    mask = np.asarray(item.mask)
    majority = {}
    for k in used:
        lab = mask[(owner == k) & (mask != 255)]
        if lab.size: majority[int(k)] = int(np.bincount(lab).argmax())
    bg = [k for k, c in majority.items() if c == 0]
    for name, V in variants.items():
        cos = (F.normalize(V, dim=-1) @ text.t()).numpy()
        for c in set(majority.values()) - {0}:
            if bg:
                res[name][1] += 1
                res[name][0] += max(cos[k, c-1] for k, m in majority.items() if m == c) > max(cos[k, c-1] for k in bg)
print({k: (round(a / max(b, 1), 3), b) for k, (a, b) in res.items()})
