"""A user's own inputs to `groupvit segment`: image files of any kind and class / background name lists.

An image is either converted to 8-bit RGB (grey, palette, CMYK, alpha, 16-bit, EXIF-rotated) with a note saying
how, or refused with the reason (`ImageRefused`), so one bad file never stops the other images of a run.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Modes whose samples exceed 8 bits: scaled to 0..255 instead of clipped (PIL's convert("RGB") clips them).
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
# what transparent pixels are composited on (the usual page colour; black would read as a dark object)
ALPHA_BACKGROUND = (255, 255, 255)


class ImageRefused(ValueError):
    """An input image that cannot be segmented; str() is '<path>: <reason>'."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


@dataclass
class UserImage:
    """An input as the model sees it: [H, W, 3] uint8 RGB, its file's mode and the conversions applied."""

    path: str
    rgb: np.ndarray
    mode: str
    notes: list[str] = field(default_factory=list)


def _wide_to_uint8(im: Image.Image) -> tuple[np.ndarray, str]:
    """16/32-bit integer or float grey -> uint8 grey by the range its type implies."""
    arr = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        top = 1.0 if arr.max(initial=0.0) <= 1.0 else float(arr.max())
    elif im.mode.startswith("I;16") or arr.max(initial=0) > 255:
        top = 65535.0 if arr.max(initial=0) <= 65535 else float(arr.max())
    else:
        top = 255.0
    grey = np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)
    return grey, f"{im.mode} grey scaled from 0..{top:g} to 8 bits"


def to_rgb(im: Image.Image) -> tuple[np.ndarray, list[str]]:
    """[H, W, 3] uint8 of an opened image and notes on what was converted."""
    notes: list[str] = []
    mode = im.mode
    if mode in WIDE_MODES:
        grey, note = _wide_to_uint8(im)
        return np.repeat(grey[..., None], 3, axis=2), [note]
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        im = Image.alpha_composite(page, rgba).convert("RGB")
        notes.append(f"{mode} with transparency composited on white")
    elif mode != "RGB":
        im = im.convert("RGB")
        notes.append("grey repeated to RGB" if mode in ("L", "1") else f"{mode} converted to RGB")
    return np.asarray(im, dtype=np.uint8).copy(), notes


def read_user_image(path: str | os.PathLike) -> UserImage:
    """Decode an image file as displayed (EXIF orientation applied, first frame of an animation) into RGB.

    Raises ImageRefused for a missing, unreadable or empty file.
    """
    p = Path(path)
    if not p.exists():
        raise ImageRefused(path, "no such file")
    if p.is_dir():
        raise ImageRefused(path, "is a folder, not an image file")
    try:
        with Image.open(p) as im:
            im.load()
            frames = getattr(im, "n_frames", 1)
            orientation = im.getexif().get(0x0112, 1)  # EXIF Orientation; 1 = stored upright
            upright = ImageOps.exif_transpose(im) if orientation != 1 else im
            mode = im.mode
            rgb, notes = to_rgb(upright)
    except UnidentifiedImageError:
        raise ImageRefused(path, "not an image file PIL can read (supported: PNG, JPEG, BMP, GIF, TIFF, WebP, ...)")
    except Image.DecompressionBombError as err:
        raise ImageRefused(path, f"too many pixels ({err})")
    except (OSError, SyntaxError, ValueError) as err:  # truncated or corrupt data
        raise ImageRefused(path, f"cannot decode the image ({err})")
    if orientation != 1:
        notes.insert(0, f"turned upright by its EXIF orientation {orientation}")
    if frames > 1:
        notes.append(f"first of {frames} frames")
    if rgb.size == 0:
        raise ImageRefused(path, "has no pixels")
    return UserImage(str(path), rgb, mode, notes)


def check_min_size(image: UserImage, patch_size: int) -> None:
    """Refuse an image whose shorter side is below one patch: the model would see less than one token of it."""
    h, w = image.rgb.shape[:2]
    if min(h, w) < patch_size:
        raise ImageRefused(image.path, f"is {w}x{h} px, smaller than one {patch_size}-px patch of the model: "
                                       "there is nothing to group; use a larger image")


# ------------------------------------------------------------------------------------------------ name lists
def _normalise(name: str) -> str:
    return re.sub(r"\s+", " ", name).strip()


def read_names(value: str, option: str) -> list[str]:
    """Names from a comma-separated list, or from a file (one name per line, blank and '#' lines skipped) when
    `value` is an existing file. Whitespace is collapsed; order is kept."""
    path = Path(value)
    if "," not in value and path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise ValueError(f"{option} {value}: not a UTF-8 text file ({err}); give one name per line") from err
        names = [_normalise(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    elif "," not in value and path.suffix.lower() in (".txt", ".csv", ".lst") and not path.exists():
        raise ValueError(f"{option} {value}: no such file (give a file of names, one per line, or 'a,b,c')")
    else:
        names = [_normalise(part) for part in value.split(",")]
    return [n for n in names if n]


def duplicates(names: list[str]) -> list[str]:
    """Names given more than once (case and spacing ignored, as the prompts' tokenizer ignores them)."""
    seen: dict[str, str] = {}
    out = []
    for n in names:
        key = n.lower()
        if key in seen and seen[key] not in out:
            out.append(seen[key])
        seen.setdefault(key, n)
    return out
