"""Geometry of test-time inference: short-side resize, sliding windows, padding to the patch grid.

These follow mmseg 0.x (the official evaluator): `Resize(img_scale=(2048, 448), keep_ratio=True)` and
`EncoderDecoder.slide_inference`. They are pure so the window layout can be tested without a model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Window = tuple[int, int, int, int]  # y1, y2, x1, x2


def resized_shape(height: int, width: int, short: int, long_max: int = 0) -> tuple[int, int]:
    """Keep-ratio target size: short side -> `short` unless the long side would exceed `long_max`.

    mmcv's rule: scale = min(long_max / long side, short / short side), size = int(side * scale + 0.5).
    short <= 0 keeps the input size. Small images are scaled UP, as in the official protocol.
    """
    if short <= 0:
        return height, width
    scale = short / min(height, width)
    if long_max > 0:
        scale = min(scale, long_max / max(height, width))
    return int(height * scale + 0.5), int(width * scale + 0.5)


def sliding_windows(height: int, width: int, window: int, stride: int) -> list[Window]:
    """mmseg's slide grid: windows of `window` px every `stride` px, the last one flush with the border.

    An image smaller than the window gets a single window covering it (smaller than `window`).
    """
    if window <= 0 or stride <= 0:
        raise ValueError(f"window ({window}) and stride ({stride}) must be positive")
    h_grids = max(height - window + stride - 1, 0) // stride + 1
    w_grids = max(width - window + stride - 1, 0) // stride + 1
    out: list[Window] = []
    for hi in range(h_grids):
        for wi in range(w_grids):
            y2 = min(hi * stride + window, height)
            x2 = min(wi * stride + window, width)
            out.append((max(y2 - window, 0), y2, max(x2 - window, 0), x2))
    return out


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """Smallest size >= (height, width) that is a multiple of `multiple` on both sides."""
    m = max(1, multiple)
    return -(-height // m) * m, -(-width // m) * m


def pad_to(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-pad [..., H, W] on the bottom/right to `size`. On a normalised image zero is the mean colour.

    The official model floors a non-multiple size in its patch convolution and stretches the token grid over
    the whole crop; padding instead keeps the token grid aligned with the pixels it covers.
    """
    dh, dw = size[0] - image.shape[-2], size[1] - image.shape[-1]
    if dh < 0 or dw < 0:
        raise ValueError(f"cannot pad {tuple(image.shape[-2:])} down to {size}")
    return F.pad(image, (0, dw, 0, dh)) if dh or dw else image


def resize_image(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of [C, H, W] or [B, C, H, W] without antialiasing (as cv2.resize, mmcv's backend)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    batched = image.dim() == 4
    x = image if batched else image.unsqueeze(0)
    x = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)
    return x if batched else x.squeeze(0)
