"""Probe (session 6): do a checkpoint's groups follow the objects or the token grid? For 200 validation images, per
grouping stage, on the hard (argmax) eval-mode maps at token resolution:

- `groups`: groups holding tokens per image;
- `object_background_shared`: the chance that an object token and a background token of the same image share a
  group (0 = groups never straddle an object's edge; a random partition into g equal groups gives ~1/g);
- `by_position`: the share of tokens whose group is the most common group at their grid position over all images
  (1 = the partition is a fixed function of position);
- `by_position_and_object`: the same, knowing also whether the token is on an object (close to `by_position` means
  object/background adds nothing to where the groups fall).

Takes final models (`model.pt`) or training checkpoints. docs/embedded-world.md, "Session 6".

    python studies/probe_group_mixing.py runs/default/groupvit_2stage/seed0/model.pt ... [--set world.KEY=VALUE ...]
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from emergence import model_from_train_state, val_batch  # noqa: E402

from groupvit.config import load_config  # noqa: E402
from groupvit.evaluation.grouping import output_field  # noqa: E402
from groupvit.model.checkpoint import load_model  # noqa: E402


def majority_share(keys: np.ndarray, values: np.ndarray) -> float:
    """Share of `values` predicted right by the most common value of their key."""
    hits = sum(np.bincount(values[keys == k]).max() for k in np.unique(keys))
    return float(hits / len(values))


def shared_group_rate(groups: np.ndarray, on_object: np.ndarray) -> float:
    """Mean over images (with both kinds of token) of P(object token and background token share a group)."""
    rates = [np.mean(g[o][:, None] == g[~o][None]) for g, o in zip(groups, on_object) if o.any() and (~o).any()]
    return float(np.mean(rates))


@torch.no_grad()
def group_mixing(model: torch.nn.Module, images: torch.Tensor, masks: np.ndarray) -> dict:
    out = model.eval().encode_image_groups(images)
    stats = {}
    for stage, stage_map in enumerate(output_field(out, "stage_assignments_hard"), start=1):  # [B, G, h, w]
        groups = stage_map.argmax(1).numpy()
        h, w = groups.shape[1:]
        objects = torch.from_numpy((masks > 0).astype(np.float32))[:, None]
        on_object = F.interpolate(objects, size=(h, w), mode="area")[:, 0].numpy() > 0.5
        position = np.broadcast_to(np.arange(h * w).reshape(h, w), groups.shape).ravel()
        stats[f"stage{stage}"] = {
            "groups": round(float(np.mean([len(np.unique(g)) for g in groups])), 1),
            "object_background_shared": round(shared_group_rate(groups, on_object), 2),
            "by_position": round(majority_share(position, groups.ravel()), 2),
            "by_position_and_object": round(majority_share(position * 2 + on_object.ravel(), groups.ravel()), 2),
        }
    return stats


def load_any(path: Path) -> torch.nn.Module:
    return load_model(path) if path.name == "model.pt" else model_from_train_state(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="the world overrides the runs were trained with (their validation split is probed)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    images, masks = val_batch(load_config(preset="default", overrides=args.overrides), 200)
    for path in args.checkpoints:
        print(path, group_mixing(load_any(path), images, masks), flush=True)


if __name__ == "__main__":
    main()
