"""Eval-time probe (session 3): multiply a trained model's assignment logits by k before the official soft readout.
Does sharpening the flat soft maps recover the structure of the hard ones? (docs/embedded-world.md, Session 3, item 1)

    python studies/probe_logit_sharpening.py RUN_DIR 1 4 16
"""
import sys, torch
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from emergence import score
from pathlib import Path
from groupvit.config import load_config
from groupvit.model import load_model
from groupvit.model.grouping import AssignAttention
from groupvit.evaluation import load_eval_dataset
import emergence
torch.set_num_threads(2)
run = sys.argv[1]
cfg = load_config(preset="default").for_variant("groupvit_2stage", 0)
world = Path("data/emergence") / emergence._world_key(load_config(preset="default"))
ds = load_eval_dataset("synthetic", world / "val", split="val")
for k in [float(a) for a in sys.argv[2:]]:
    model = load_model(Path(run) / "model.pt")
    for m in model.modules():
        if isinstance(m, AssignAttention):
            m.scale *= k
    r = score(model, cfg, ds, "groupvit", 150)
    print(k, "mIoU %.3f fg %.3f oracle %.3f groups %s" % (r["mIoU"], r["mIoU_foreground"], r["oracle_mIoU"], r["groups_in_use"]),
          "hard", {a: (round(b,3) if isinstance(b,float) else b) for a,b in r["hard_assignment"].items()}, r["per_class_IoU"], flush=True)
