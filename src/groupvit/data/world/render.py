"""Paint a scene: background, patterned or flat objects, and the label maps from the same geometry.

Everything is drawn at `ss` times the output resolution and box-filtered down, which anti-aliases edges and
fine patterns. The label maps come from the very same supersampled object masks (a pixel belongs to the
topmost object that covers at least half of it), so image and mask cannot drift apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from groupvit.data.world.colours import texture_partner
from groupvit.data.world.shapes import get_shape, rasterise_image
from groupvit.data.world.spec import BackgroundSpec, ObjectSpec, Scene


def supersampling(image_size: int) -> int:
    """4x below 256 px, fewer samples above, so large images stay affordable."""
    return max(1, min(4, 1024 // image_size))


@dataclass
class Rendered:
    image: np.ndarray  # H x W x 3 uint8
    class_mask: np.ndarray  # H x W uint8: 0 background, i + 1 for classes[i]
    instance_mask: np.ndarray  # H x W uint8: 0 background, k + 1 for scene.objects[k]
    full_pixels: list[int]  # per object: pixels it would own with nothing on top of it
    visible_fraction: list[float]  # per object: owned pixels / full pixels


# ------------------------------------------------------------------------------------------------ geometry
@dataclass
class Silhouette:
    """An object's supersampled silhouette, cropped to its reach: drawing, pasting and reducing a crop instead
    of the whole canvas is most of the generator's speed. The crop starts on an output pixel boundary."""

    image: Image.Image  # 'L', 255 inside, ss times the output resolution
    x0: int  # crop origin in OUTPUT pixels
    y0: int
    ss: int

    @property
    def box_hi(self) -> tuple[int, int, int, int]:
        w, h = self.image.size
        return self.x0 * self.ss, self.y0 * self.ss, self.x0 * self.ss + w, self.y0 * self.ss + h

    def coverage(self) -> np.ndarray:
        """Crop pixels (output resolution) at least half covered. PIL's box reduce rounds the mean of ss*ss
        values of 0/255, so a mean >= 128 means at least half of the subpixels are inside."""
        lo = self.image.reduce(self.ss) if self.ss > 1 else self.image
        return np.asarray(lo) >= 128


def silhouette(obj: ObjectSpec, image_size: int, ss: int) -> Silhouette:
    side = image_size * ss
    reach = get_shape(obj.cls).radius * obj.size * side + ss  # hi-res pixels, with a one-pixel margin
    cx, cy = obj.center[0] * side, obj.center[1] * side
    x0, y0 = max(0, math.floor((cx - reach) / ss)), max(0, math.floor((cy - reach) / ss))
    x1, y1 = min(image_size, math.ceil((cx + reach) / ss)), min(image_size, math.ceil((cy + reach) / ss))
    image = rasterise_image(get_shape(obj.cls).parts, ((x1 - x0) * ss, (y1 - y0) * ss), obj.size * side,
                            (cx - x0 * ss, cy - y0 * ss), obj.rotation)
    return Silhouette(image=image, x0=x0, y0=y0, ss=ss)


def object_mask(obj: ObjectSpec, image_size: int) -> np.ndarray:
    """The object's pixels at output resolution, exactly as the label map assigns them."""
    sil = silhouette(obj, image_size, supersampling(image_size))
    cov = sil.coverage()
    out = np.zeros((image_size, image_size), bool)
    out[sil.y0:sil.y0 + cov.shape[0], sil.x0:sil.x0 + cov.shape[1]] = cov
    return out


# ------------------------------------------------------------------------------------------------ patterns
def _coords(side: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(side, dtype=np.float32) + 0.5) / side
    return c[None, :], c[:, None]


def _rotated(x: np.ndarray, y: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    a = math.radians(angle_deg)
    return x * math.cos(a) + y * math.sin(a), -x * math.sin(a) + y * math.cos(a)


def _smooth_field(seed: int, grid: int, side: int) -> np.ndarray:
    """A smooth random field in [0, 1]: a coarse random grid upsampled bicubically."""
    coarse = np.random.default_rng(seed).random((grid, grid), dtype=np.float32)
    up = np.asarray(Image.fromarray(coarse, mode="F").resize((side, side), Image.Resampling.BICUBIC))
    lo, hi = float(up.min()), float(up.max())
    return (up - lo) / max(hi - lo, 1e-6)


def _lerp(c0: tuple[int, int, int], c1: tuple[int, int, int], t: np.ndarray) -> Image.Image:
    a, b = np.asarray(c0, np.float32), np.asarray(c1, np.float32)
    return _to_image(a + (b - a) * t[..., None])


def _to_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB")


def _odd(cells: np.ndarray) -> np.ndarray:
    """Parity of whole-numbered cell indices (float floors): the cheap way to alternate two colours."""
    return (cells.astype(np.int32) & 1).astype(bool)


def _two_tone(c0: tuple[int, int, int], c1: tuple[int, int, int], where_c1: np.ndarray) -> Image.Image:
    """A hard-edged two-colour pattern (edges are anti-aliased later by the downsampling), via a two-entry
    palette image: one C pass instead of per-channel array arithmetic."""
    h, w = where_c1.shape
    image = Image.frombytes("P", (w, h), np.ascontiguousarray(where_c1, dtype=np.uint8).tobytes())
    image.putpalette([*c0, *c1])
    return image.convert("RGB")


def _upsampled(image: Image.Image, ss: int) -> Image.Image:
    """Repeat each pixel ss x ss times: smooth backgrounds are drawn at output resolution (16x fewer pixels at
    4x), and the final box filter gives their pixels back unchanged."""
    return image if ss == 1 else image.resize((image.width * ss, image.height * ss), Image.Resampling.NEAREST)


def render_background(bg: BackgroundSpec, side: int, ss: int) -> Image.Image:
    """side x side RGB background at the supersampled resolution (`ss` times the output's)."""
    c0, c1 = bg.colours
    if bg.kind == "plain":
        return Image.new("RGB", (side, side), c0)
    a = math.radians(bg.angle)
    if bg.kind == "gradient":
        x, y = _coords(side // ss)
        t = np.broadcast_to(x * math.cos(a) + y * math.sin(a), (side // ss, side // ss))
        return _upsampled(_lerp(c0, c1, (t - t.min()) / max(float(t.max() - t.min()), 1e-6)), ss)
    if bg.kind == "noise":
        field = _smooth_field(bg.noise_seed, 6, side // ss)
        grain = np.random.default_rng(bg.noise_seed + 1).normal(0.0, 7.0, (side // ss, side // ss, 1))
        lo, hi = np.asarray(c0, np.float32), np.asarray(c1, np.float32)
        return _upsampled(_to_image(lo + (hi - lo) * field[..., None] + grain.astype(np.float32)), ss)
    if bg.kind == "blobs":  # hard edges: drawn supersampled, like stripes and checks
        return _two_tone(c0, c1, _smooth_field(bg.noise_seed, 5, side) > 0.5)
    x, y = _coords(side)
    u = x * math.cos(a) + y * math.sin(a)
    if bg.kind == "stripes":
        return _two_tone(c0, c1, _odd(np.floor(u * (2 / bg.period))))
    if bg.kind == "checker":
        v = -x * math.sin(a) + y * math.cos(a)
        return _two_tone(c0, c1, _odd(np.floor(u * (1 / bg.period)) + np.floor(v * (1 / bg.period))))
    raise ValueError(f"unknown background kind {bg.kind!r}")


def texture_pattern(obj: ObjectSpec, sil: Silhouette, side: int) -> np.ndarray:
    """Where a patterned object shows its partner shade, over the silhouette's crop (boolean, supersampled).
    The pattern is anchored at the object's centre, so a hard-negative twin carries exactly the same fill."""
    bx0, by0, bx1, by1 = sil.box_hi
    x = (np.arange(bx0, bx1, dtype=np.float32) + 0.5)[None, :] / side - obj.center[0]
    y = (np.arange(by0, by1, dtype=np.float32) + 0.5)[:, None] / side - obj.center[1]
    u, v = _rotated(x, y, obj.texture_angle)
    p = obj.texture_period
    if obj.texture == "stripes":
        return _odd(np.floor(u * (2 / p)))
    if obj.texture == "checks":
        return _odd(np.floor(u * (1 / p)) + np.floor(v * (1 / p)))
    if obj.texture == "dots":
        du, dv = u * (1 / p), v * (1 / p)
        du, dv = du - np.floor(du) - 0.5, dv - np.floor(dv) - 0.5
        return du * du + dv * dv < 0.28**2
    raise ValueError(f"unknown object texture {obj.texture!r}")


# ------------------------------------------------------------------------------------------------ scene
def render_scene(scene: Scene, image_size: int, class_index: dict[str, int]) -> Rendered:
    """Image and label maps of a scene; `class_index` maps a class name to its label (1-based)."""
    ss = supersampling(image_size)
    side = image_size * ss
    canvas = render_background(scene.background, side, ss)
    instance = np.zeros((image_size, image_size), np.uint8)
    full_pixels: list[int] = []
    for k, obj in enumerate(scene.objects):
        sil = silhouette(obj, image_size, ss)
        canvas.paste(obj.rgb, box=sil.box_hi, mask=sil.image)
        if obj.texture != "none":
            partner = np.asarray(sil.image) & (texture_pattern(obj, sil, side).astype(np.uint8) * 255)
            canvas.paste(texture_partner(obj.rgb), box=sil.box_hi, mask=Image.fromarray(partner, "L"))
        cov = sil.coverage()
        region = instance[sil.y0:sil.y0 + cov.shape[0], sil.x0:sil.x0 + cov.shape[1]]
        region[cov] = k + 1
        full_pixels.append(int(cov.sum()))
    image = np.asarray(canvas.reduce(ss) if ss > 1 else canvas)
    lut = np.zeros(256, np.uint8)
    for k, obj in enumerate(scene.objects):
        lut[k + 1] = class_index[obj.cls]
    visible = [float((instance == k + 1).sum()) / max(n, 1) for k, n in enumerate(full_pixels)]
    return Rendered(image=image, class_mask=lut[instance], instance_mask=instance, full_pixels=full_pixels,
                    visible_fraction=visible)
