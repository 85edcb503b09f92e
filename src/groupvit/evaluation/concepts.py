"""What the group tokens learned (the paper's Figure 7): for every grouping stage, each group token with the image
patches it owns most surely over a set of images, and, where masks exist, the ground-truth classes of its patches.

Read-only use of a GroupViT: one `encode_image_groups` pass per batch. A patch belongs to the group whose stage map
(the hard, one-hot maps chained over the stages: the partition the model makes) owns it; the soft map's value there
ranks the patches of one group.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from groupvit.evaluation.classification import IMAGE_SUFFIXES, classification_view
from groupvit.evaluation.grouping import output_field
from groupvit.evaluation.preprocess import IMAGENET_MEAN, IMAGENET_STD, normalize, to_float_chw
from groupvit.evaluation.text import model_device

IGNORE = 255  # the masks' "not scored" label


@dataclass
class TokenConcept:
    """One group token of one stage: how many patches it owns, its surest patches and its patches' classes."""

    stage: int  # 1-based grouping stage
    token: int  # the group's index within the stage
    patches: int  # patches it owns over all images
    share: float  # patches / all patches of the stage
    top: list[tuple[int, int, int, float]] = field(default_factory=list)  # (image, row, col, soft score), best first
    classes: dict[str, float] = field(default_factory=dict)  # class -> share of its patches (masks only)

    @property
    def label(self) -> str:
        """'12% of patches' plus the most frequent class of its patches and that class's share, where known."""
        text = f"{100 * self.share:.1f}% of patches"
        if self.classes:
            name, frac = max(self.classes.items(), key=lambda kv: kv[1])
            text += f", {name} {100 * frac:.0f}%"
        return text


@dataclass
class GroupConcepts:
    """Every stage's token concepts (stages[s][g]) and the patch grid (rows, cols) their positions refer to."""

    stages: list[list[TokenConcept]]
    grid: tuple[int, int]


def patch_classes(mask: np.ndarray, grid: tuple[int, int], num_classes: int) -> np.ndarray:
    """[h, w] most frequent label of each patch of a [H, W] mask (IGNORE pixels skipped; -1 for all-ignored)."""
    h, w = grid
    ph, pw = mask.shape[0] // h, mask.shape[1] // w
    blocks = mask[: h * ph, : w * pw].reshape(h, ph, w, pw).transpose(0, 2, 1, 3).reshape(h, w, ph * pw)
    counts = (blocks[..., None] == np.arange(num_classes)).sum(axis=2)  # [h, w, C]
    return np.where(counts.sum(-1) > 0, counts.argmax(-1), -1)


@torch.no_grad()
def group_concepts(model: nn.Module, images: Sequence[np.ndarray], *, masks: Sequence[np.ndarray] | None = None,
                   class_names: Sequence[str] | None = None, top_k: int = 8, batch_size: int = 32,
                   mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
                   ) -> GroupConcepts:
    """Per stage, every group token's concept over `images` (equally sized HxWx3 uint8 arrays the model accepts).

    With `masks` (HxW labels indexing `class_names`) each token also gets the classes of its patches.
    """
    if not hasattr(model, "encode_image_groups"):
        raise TypeError("this model has no grouping stages (a plain ViT?): group concepts need a GroupViT checkpoint")
    if not len(images):
        raise ValueError("no images to find group concepts in")
    if masks is not None and (class_names is None or len(masks) != len(images)):
        raise ValueError("masks need class_names and one mask per image")
    model.eval()
    device = model_device(model)
    owners: list[list[np.ndarray]] = []  # per stage: [B, h, w] owning group per batch
    scores: list[list[np.ndarray]] = []
    sizes: list[int] = []
    for start in range(0, len(images), max(1, batch_size)):
        batch = torch.stack([to_float_chw(im) for im in images[start:start + batch_size]]).to(device)
        out = model.encode_image_groups(normalize(batch, mean, std))
        soft, hard = output_field(out, "stage_assignments"), output_field(out, "stage_assignments_hard")
        if not owners:
            owners, scores = [[] for _ in soft], [[] for _ in soft]
            sizes = [int(m.shape[1]) for m in soft]
        for s, (soft_map, hard_map) in enumerate(zip(soft, hard)):
            owner = hard_map.float().argmax(1)
            owners[s].append(owner.cpu().numpy())
            scores[s].append(soft_map.float().gather(1, owner[:, None]).squeeze(1).cpu().numpy())
    stages = []
    for s, groups in enumerate(sizes):
        owner, score = np.concatenate(owners[s]), np.concatenate(scores[s])  # [N, h, w]
        labels = None
        if masks is not None:
            labels = np.stack([patch_classes(np.asarray(m), owner.shape[1:], len(class_names)) for m in masks])
        stages.append([_token_concept(s + 1, g, owner, score, labels, class_names, top_k) for g in range(groups)])
    return GroupConcepts(stages, tuple(int(n) for n in owners[0][0].shape[1:]))


def _token_concept(stage: int, token: int, owner: np.ndarray, score: np.ndarray, labels: np.ndarray | None,
                   class_names: Sequence[str] | None, top_k: int) -> TokenConcept:
    mine = owner == token
    n = int(mine.sum())
    idx = np.argwhere(mine)  # (image, row, col) in scan order
    order = np.argsort(-score[mine], kind="stable")[:top_k]
    top = [(int(i), int(r), int(c), round(float(score[i, r, c]), 4)) for i, r, c in idx[order]]
    classes: dict[str, float] = {}
    if labels is not None and n:
        own = labels[mine]
        own = own[own >= 0]
        for k, count in zip(*np.unique(own, return_counts=True)):
            classes[str(class_names[k])] = round(float(count) / max(1, len(own)), 4)
    return TokenConcept(stage, token, n, round(n / owner.size, 4), top, classes)


# ---------------------------------------------------------------------------------------------- images
def load_folder_images(folder: str | Path, size: int, max_images: int = 0) -> tuple[list[str], list[np.ndarray]]:
    """Every image under `folder` (recursively, sorted by path), short side resized to `size` and centre-cropped
    to size x size, as (paths relative to the folder, RGB arrays)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if max_images > 0:
        paths = paths[:max_images]
    if not paths:
        raise FileNotFoundError(f"image folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    arrays = []
    for path in paths:
        with Image.open(path) as im:
            arrays.append(np.asarray(classification_view(im, size, size)))
    return [str(p.relative_to(root)) for p in paths], arrays


def patch_window(image: np.ndarray, row: int, col: int, grid: tuple[int, int], context: int = 1) -> np.ndarray:
    """The patch at (row, col) with `context` patches around it (edge-padded), as an RGB array."""
    ph, pw = image.shape[0] // grid[0], image.shape[1] // grid[1]
    pad = ((context * ph, context * ph), (context * pw, context * pw), (0, 0))
    padded = np.pad(image, pad, mode="edge")
    y, x = row * ph, col * pw  # the patch's corner in the padded image is offset by the padding
    return padded[y:y + (2 * context + 1) * ph, x:x + (2 * context + 1) * pw]


# ---------------------------------------------------------------------------------------------- outputs
def concepts_figure(concepts: GroupConcepts, images: Sequence[np.ndarray], title: str = "", context: int = 1):
    """One row per group token (stage by stage, most-used first; tokens that own no patch left out), one column
    per surest patch: the patch outlined in its neighbourhood."""
    import matplotlib

    matplotlib.use("Agg")  # saved as PNG, never shown in a window
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    stages, grid = concepts.stages, concepts.grid
    rows = [c for stage in stages for c in sorted(stage, key=lambda c: -c.patches) if c.patches]
    cols = max([len(c.top) for c in rows] + [1])
    height = 1.1 * max(1, len(rows)) + 0.6
    fig, axes = plt.subplots(max(1, len(rows)), cols, figsize=(1.1 * cols + 2.6, height), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    for r, concept in enumerate(rows):
        axes[r][0].set_ylabel(f"stage {concept.stage}, group {concept.token}\n{concept.label}", rotation=0,
                              ha="right", va="center", fontsize=7)
        for k, (image, row, col, score) in enumerate(concept.top):
            window = patch_window(images[image], row, col, grid, context)
            axes[r][k].imshow(window, interpolation="nearest")
            ph, pw = window.shape[0] / (2 * context + 1), window.shape[1] / (2 * context + 1)
            axes[r][k].add_patch(Rectangle((context * pw - 0.5, context * ph - 0.5), pw, ph, fill=False,
                                           edgecolor="yellow", lw=1.2))
    unused = sum(1 for stage in stages for c in stage if not c.patches)
    heading = title + (f" ({unused} group tokens own no patch)" if unused else "")
    fig.tight_layout()
    if heading:  # above the top row (the saved figure's tight bounding box takes it in)
        fig.suptitle(heading, fontsize=9, y=1.0 + 0.25 / height)
    return fig


def write_concepts(concepts: GroupConcepts, names: Sequence[str], images: Sequence[np.ndarray], out_dir: str | Path,
                   title: str = "") -> list[Path]:
    """groups.json (every token: patches, share, classes, surest patches by image name) and groups.png."""
    from groupvit.atomic import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for stage in concepts.stages:
        for concept in stage:
            record = asdict(concept)
            record["top"] = [{"image": names[i], "row": r, "col": c, "score": s} for i, r, c, s in concept.top]
            records.append(record)
    json_path = out / "groups.json"
    atomic_write_text(json_path, json.dumps({"images": len(names), "grid": list(concepts.grid),
                                                        "tokens": records}, indent=2) + "\n")
    fig = concepts_figure(concepts, images, title)
    png = out / "groups.png"
    fig.savefig(png, dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return [json_path, png]
