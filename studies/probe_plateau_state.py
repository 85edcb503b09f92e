"""Probe (session 5): is a checkpoint in the loss-plateau state? For 64 validation images, per grouping stage: the
normalised entropy of the noise-free soft assignment (near 0 = saturated softmax), how many groups hold tokens and
the largest group's share (eval mode, argmax), and the mean cosine between different images' embeddings (near 1 =
every image looks the same to the model). docs/embedded-world.md, "Session 5", item 1.

    python studies/probe_plateau_state.py runs/default/groupvit_2stage/seed0/checkpoints/step-00000300.pt ... \
        [--set world.KEY=VALUE ...]
"""
import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from emergence import model_from_train_state, val_batch  # noqa: E402

from groupvit.config import load_config  # noqa: E402


def mean_offdiagonal_cosine(embeds: torch.Tensor) -> float:
    cos = F.normalize(embeds, dim=-1) @ F.normalize(embeds, dim=-1).t()
    n = len(cos)
    return float((cos.sum() - cos.diag().sum()) / (n * n - n))


@torch.no_grad()
def plateau_state(model: torch.nn.Module, images: torch.Tensor) -> dict:
    model.eval()
    out = model.image_encoder(images)
    stages = []
    for soft, hard in zip(out.soft_assignments, out.hard_assignments):  # [B, G, N]
        entropy = -(soft * soft.clamp_min(1e-12).log()).sum(1).mean() / math.log(soft.shape[1])
        counts = hard.sum(-1)
        stages.append({"soft_entropy": round(float(entropy), 3),
                       "groups_holding_tokens": round(float((counts > 0).float().sum(1).mean()), 1),
                       "largest_group_share": round(float((counts.max(1).values / hard.shape[-1]).mean()), 2)})
    return {"stages": stages, "image_embed_cosine": round(mean_offdiagonal_cosine(model.encode_image(images)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="the world overrides the runs were trained with (their validation split is probed); "
                             "session 5's figures are on the plain world: --set world.background_clutter=0.0 "
                             "--set world.caption.background_word_rate=0.2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    images, _ = val_batch(load_config(preset="default", overrides=args.overrides), 64)
    for path in args.checkpoints:
        print(path, plateau_state(model_from_train_state(path), images), flush=True)


if __name__ == "__main__":
    main()
