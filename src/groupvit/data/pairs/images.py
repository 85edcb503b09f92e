"""Downloaded bytes -> a verified, resized, re-encoded JPEG (img2dataset's `resize_mode keep_ratio`).

Why re-encode at all: the raw web files range from tiny GIFs to 40-megapixel PNGs; storing every image as a JPEG
whose short side is `image_size` (512 for the official shards) bounds disk use and decode time in training, and
decoding each file fully here is what catches truncated or fake images before they reach a shard.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image


class ImageProcessError(Exception):
    """Bytes that are not a usable image (counted as failed_to_resize, as img2dataset does)."""


@dataclass(frozen=True)
class ProcessedImage:
    data: bytes  # JPEG
    width: int
    height: int
    original_width: int
    original_height: int


def keep_ratio_size(width: int, height: int, image_size: int, only_if_bigger: bool) -> tuple[int, int]:
    """The size whose short side is `image_size`, aspect ratio kept (unchanged when only_if_bigger and smaller)."""
    short = min(width, height)
    if short <= 0:
        raise ImageProcessError(f"empty image {width}x{height}")
    if short == image_size or (only_if_bigger and short < image_size):
        return width, height
    scale = image_size / short
    return max(1, round(width * scale)), max(1, round(height * scale))


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent pixels become white (a black fill would invent dark objects)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def process_image(data: bytes, *, image_size: int, only_if_bigger: bool = True, quality: int = 95) -> ProcessedImage:
    """Decode fully, resize (keep ratio), encode as JPEG; ImageProcessError if any step fails."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                original_width, original_height = opened.size
                image = _to_rgb(opened)
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBomb*, zlib errors
        raise ImageProcessError(f"image decoding error: {type(exc).__name__}: {exc}") from None
    size = keep_ratio_size(original_width, original_height, image_size, only_if_bigger)
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return ProcessedImage(out.getvalue(), size[0], size[1], original_width, original_height)
