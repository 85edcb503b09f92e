"""The image side of a GroupViT checkpoint as a `torch.export` program (.pt2) for segmentation inference.

Why torch.export: it ships with torch (no new dependency), its programs load with `torch.export.load` alone
(without this package), and the model traces without changes. TorchScript is deprecated in current torch and ONNX
would need the onnx/onnxscript packages, which the environment does not keep.

The program takes normalised images [B, C, H, W] at the size it was exported for (the model's image_size unless
given; B is dynamic) and returns, in this order: image_embed [B, D], group_embeds [B, G, D], pixel_to_group
[B, G, h, w] (soft, the product of the stages' assignments), pixel_to_group_hard [B, G, h, w] and, for models with
image.member_embeds, member_embeds [B, G, D]. A JSON file beside it records these names, the input size and the
normalisation. Text embeddings for the class names still come from the checkpoint's text tower.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from ..atomic import sha256_file
from .dual_encoder import GroupViTModel

__all__ = ["GroupingImageProgram", "export_image_program", "PROGRAM_FILE", "PROGRAM_INFO"]

PROGRAM_FILE = "image_encoder.pt2"
PROGRAM_INFO = "image_encoder.json"
_MAX_BATCH = 4096


class GroupingImageProgram(nn.Module):
    """GroupViTModel.encode_image_groups with tensor outputs only (what torch.export needs), holding the image
    encoder and head alone so that the program carries no text tower."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.image_encoder = model.image_encoder
        self.image_head = model.image_head
        self.outputs = ["image_embed", "group_embeds", "pixel_to_group", "pixel_to_group_hard"]
        if model.cfg.image.member_embeds:
            self.outputs.append("member_embeds")

    project_image = GroupViTModel.project_image

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = GroupViTModel._encode_image_groups(self, images)
        return tuple(getattr(out, name) for name in self.outputs)


def export_image_program(
    checkpoint: str | os.PathLike, out_dir: str | os.PathLike, *, image_size: int | None = None,
    mean: list[float] | None = None, std: list[float] | None = None, overwrite: bool = False, atol: float = 1e-5,
) -> Path:
    """Write OUT/image_encoder.pt2 and OUT/image_encoder.json for `checkpoint`'s image side; return the folder.

    The program is checked against the eager model on batches of 1 and 3 before the folder gets its name.
    """
    from .checkpoint import load_model, weights_file
    from .export_hf import ExportError, check_out_folder, staged_folder

    out = Path(out_dir)
    check_out_folder(out, overwrite)
    model = load_model(checkpoint)
    if not model.is_grouping:
        raise ExportError(f"{checkpoint}: a plain ViT (image.grouping=false) has no groups to export for "
                          "segmentation")
    cfg = model.cfg.image
    size = image_size or cfg.image_size
    if size % cfg.patch_size:
        raise ExportError(f"--image-size {size} is not a multiple of the patch size {cfg.patch_size}")
    wrapper = GroupingImageProgram(model).eval()
    example = torch.zeros(2, cfg.in_chans, size, size)
    batch = torch.export.Dim("batch", min=1, max=_MAX_BATCH)
    with torch.no_grad():
        program = torch.export.export(wrapper, (example,), dynamic_shapes={"images": {0: batch}})
    with staged_folder(out) as tmp:
        torch.export.save(program, tmp / PROGRAM_FILE)
        loaded = torch.export.load(tmp / PROGRAM_FILE).module()
        generator = torch.Generator().manual_seed(0)
        worst = 0.0
        for n in (1, 3):
            images = torch.randn(n, cfg.in_chans, size, size, generator=generator)
            with torch.no_grad():
                for mine, theirs in zip(wrapper(images), loaded(images)):
                    worst = max(worst, float((mine - theirs).abs().max()))
        if worst > atol:
            raise ExportError(f"{checkpoint}: the exported program differs from the model by {worst:.2e} "
                              f"(> atol {atol:g})")
        info = {
            "source": str(checkpoint), "source_sha256": sha256_file(weights_file(checkpoint)),
            "input": {"shape": ["batch", cfg.in_chans, size, size], "mean": mean, "std": std,
                      "note": "RGB in [0, 1], then (x - mean) / std"},
            "outputs": wrapper.outputs, "patch_size": cfg.patch_size, "max_abs_diff": worst,
        }
        (tmp / PROGRAM_INFO).write_text(json.dumps(info, indent=2) + "\n")
    return out
