"""Image -> normalised tensor, the only preprocessing the evaluation needs (resizing lives in windows.py)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageLike = np.ndarray | Image.Image | torch.Tensor


def to_float_chw(image: ImageLike) -> torch.Tensor:
    """[3, H, W] float in [0, 1] from an RGB uint8 array (H, W, 3), a PIL image, or a [3, H, W] tensor
    (uint8, or float already in [0, 1])."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ValueError(f"expected an RGB image array (H, W, 3), got shape {image.shape}")
        rgb = image[..., :3]
        rgb = np.ascontiguousarray(rgb) if rgb.flags.writeable else rgb.copy()  # torch wants writable memory
        t = torch.from_numpy(rgb).permute(2, 0, 1)
    elif isinstance(image, torch.Tensor):
        t = image
        if t.dim() != 3 or t.shape[0] != 3:
            raise ValueError(f"expected a [3, H, W] tensor, got shape {tuple(t.shape)}")
    else:
        raise TypeError(f"unsupported image type {type(image).__name__}")
    return t.float() / 255.0 if t.dtype == torch.uint8 else t.float()


def normalize(image: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """(x - mean) / std per channel on [3, H, W] or [B, 3, H, W]."""
    m = torch.as_tensor(mean, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    return (image - m) / s


def load_rgb(path) -> np.ndarray:
    """RGB uint8 array of an image file (PIL decodes; torchvision's C++ ops are not needed)."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
