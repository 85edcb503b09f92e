"""Image-text pair lists in the real datasets' formats, pointing at a loopback server that draws the images on the
fly (deterministic per URL): CC3M's caption<TAB>url TSV, CC12M's url<TAB>caption TSV (with its <PERSON> tags), a
YFCC metadata table (URL-encoded title/description with HTML) and RedCaps annotation JSON files. A few links are
dead (404), as in every real list.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import quote_plus

import numpy as np
from PIL import Image, ImageDraw

# dataset name -> (list format, list path under the lists folder): the paper preset's file names
LISTS = {
    "cc3m": ("cc3m", "cc3m/Train_GCC-training.tsv"),
    "cc12m": ("cc12m", "cc12m/cc12m.tsv"),
    "yfcc14m": ("yfcc", "yfcc14m/yfcc14m.tsv"),
    "redcaps": ("redcaps", "redcaps/annotations"),
}
IMAGE_SIZE = (320, 256)  # (w, h): above the 224 px crops, below pairs.image_size (kept as is)
DEAD_EVERY = 25  # every 25th link is dead

_THINGS = ["dog", "cat", "horse", "bird", "car", "bus", "boat", "train", "bicycle", "sheep", "cow", "chair",
           "sofa", "bottle", "plant", "person", "table", "aeroplane", "motorbike", "television"]
_PLACES = ["on the grass", "in the street", "by the sea", "in a kitchen", "under a tree", "in the snow",
           "at the park", "on a table", "near the river", "in a field"]
_COLOURS = ["red", "white", "black", "brown", "blue", "green", "yellow", "grey"]


def _caption(dataset: str, i: int) -> str:
    thing, place = _THINGS[i % len(_THINGS)], _PLACES[(i // 3) % len(_PLACES)]
    colour = _COLOURS[(i // 7) % len(_COLOURS)]
    if dataset == "cc3m":  # hypernymised, lower case
        return f"a {colour} {thing} {place}"
    if dataset == "cc12m":  # person names replaced by <PERSON>
        return f"<PERSON> and a {colour} {thing} {place}" if i % 4 == 0 else f"A {colour} {thing} {place}."
    if dataset == "redcaps":
        return f"my {thing} {place}" if i % 5 == 0 else f"{colour} {thing} {place}"
    return f"{colour.title()} {thing} {place}"


def thing_index(dataset: str, i: int) -> int:
    return i % len(_THINGS)


def image_bytes(dataset: str, i: int, fmt: str = "JPEG") -> bytes:
    """The image behind a list's i-th link: a textured background and a shape whose colour and kind follow the
    caption's thing and colour words."""
    rng = np.random.default_rng([sum(map(ord, dataset)), i])
    w, h = IMAGE_SIZE
    background = rng.integers(60, 200, 3)
    pixels = np.clip(background + rng.integers(-25, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    thing = thing_index(dataset, i)
    colour = tuple(int(c) for c in np.random.default_rng(thing).integers(0, 255, 3))
    x0, y0 = int(rng.integers(0, w // 3)), int(rng.integers(0, h // 3))
    box = (x0, y0, x0 + w // 2, y0 + h // 2)
    (draw.ellipse if thing % 2 else draw.rectangle)(box, fill=colour)
    buf = io.BytesIO()
    image.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def pair_rows(dataset: str, num_pairs: int, base_url: str) -> list[tuple[str, str]]:
    """(url, caption) of a list: JPEG links, every 10th a PNG, every DEAD_EVERY-th dead."""
    rows = []
    for i in range(num_pairs):
        if i % DEAD_EVERY == DEAD_EVERY - 1:
            url = f"{base_url}/pairs/dead/{dataset}/{i}.jpg"
        else:
            url = f"{base_url}/pairs/img/{dataset}/{i}.{'png' if i % 10 == 3 else 'jpg'}"
        rows.append((url, _caption(dataset, i)))
    return rows


def write_list(dataset: str, lists_dir: str | Path, num_pairs: int, base_url: str) -> Path:
    """Write `dataset`'s list under lists_dir in its real format; returns the path the preset names."""
    fmt, rel = LISTS[dataset]
    path = Path(lists_dir) / rel
    rows = pair_rows(dataset, num_pairs, base_url)
    if fmt == "redcaps":  # one JSON file per subreddit
        path.mkdir(parents=True, exist_ok=True)
        for sub, part in (("itookapicture", rows[0::2]), ("pics", rows[1::2])):
            # `caption` is RedCaps' cleaned caption (lower case, no "[OC]"-style tags); `raw_caption` the post title
            annotations = [{"image_id": f"{sub}{k}", "author": "someone", "url": url,
                            "raw_caption": f"{caption.capitalize()} [OC]", "caption": caption, "subreddit": sub,
                            "score": 1, "created_utc": 0, "permalink": f"/r/{sub}/comments/{k}/"} for k, (url, caption) in enumerate(part)]
            document = {"info": {"subreddit": sub}, "annotations": annotations}
            (path / f"{sub}_2020.json").write_text(json.dumps(document))
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "cc3m":
        text = "".join(f"{caption}\t{url}\n" for url, caption in rows)
    elif fmt == "cc12m":
        text = "".join(f"{url}\t{caption}\n" for url, caption in rows)
    else:  # YFCC100M metadata columns; title and description URL-encoded, descriptions with HTML
        lines = ["photoid\tuid\ttitle\tdescription\tdownloadurl"]
        for i, (url, caption) in enumerate(rows):
            title, _, rest = caption.partition(" ")
            description = f"<b>{rest}</b>" if i % 3 else ""
            lines.append(f"{1000 + i}\t{i % 7}@N00\t{quote_plus(title)}\t{quote_plus(description)}\t{url}")
        text = "\n".join(lines) + "\n"
    path.write_text(text)
    return path


def write_lists(lists_dir: str | Path, num_pairs: int, base_url: str) -> dict[str, Path]:
    return {name: write_list(name, lists_dir, num_pairs, base_url) for name in LISTS}
