"""The world's data card: what is in it (classes, frequencies, caption lengths, backgrounds) and hashes that
pin its exact bytes. Reports cite the content hash so a number can be traced to the data it came from.

Everything here is a pure function of the generated files and the config (no timestamps, no worker counts),
so the card itself is byte-identical across runs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np

from groupvit.data.world.config import WorldConfig
from groupvit.atomic import atomic_write_text, sha256_file

CARD_FILES = ("datacard.json", "datacard.md")
GENERATOR_VERSION = "1"  # bump when the same config would produce different bytes


def summarise(meta: dict) -> dict:
    """The few per-sample facts the card aggregates (what a worker sends back instead of whole samples)."""
    return {
        "classes": [o["class"] for o in meta["objects"]],
        "colours": [o["colour"] for o in meta["objects"]],
        "textures": [o["texture"] for o in meta["objects"]],
        "min_visible": min((o["visible_fraction"] for o in meta["objects"]), default=1.0),
        "background": meta["background"],
        "words": len(meta["caption"].split()),
        "hard_negative": meta["hard_negative_of"] is not None,
    }


def split_stats(summaries: list[dict], classes: list[str]) -> dict:
    """Counts and frequencies of one split."""
    n = len(summaries)
    objects = Counter(c for s in summaries for c in s["classes"])
    images = Counter(c for s in summaries for c in set(s["classes"]))
    per_image = Counter(len(s["classes"]) for s in summaries)
    words = np.array([s["words"] for s in summaries] or [0])
    total_objects = sum(objects.values())
    return {
        "samples": n,
        "objects": total_objects,
        "objects_per_image": {str(k): per_image[k] for k in sorted(per_image)},
        "class_objects": {c: objects[c] for c in classes},
        "class_object_frequency": {c: round(objects[c] / max(total_objects, 1), 4) for c in classes},
        "class_images": {c: images[c] for c in classes},
        "class_image_frequency": {c: round(images[c] / max(n, 1), 4) for c in classes},
        "colours": dict(sorted(Counter(c for s in summaries for c in s["colours"]).items())),
        "textures": dict(sorted(Counter(t for s in summaries for t in s["textures"]).items())),
        "backgrounds": dict(sorted(Counter(s["background"] for s in summaries).items())),
        "caption_words": {
            "mean": round(float(words.mean()), 3), "min": int(words.min()), "median": float(np.median(words)),
            "p95": float(np.percentile(words, 95)), "max": int(words.max()),
        },
        "min_visible_fraction": round(min((s["min_visible"] for s in summaries), default=1.0), 4),
        "hard_negatives": sum(1 for s in summaries if s["hard_negative"]),
    }


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under `root` except the card itself, keyed by posix relative path."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel not in CARD_FILES:
            out[rel] = sha256_file(path)
    return out


def content_hash(hashes: dict[str, str]) -> str:
    """One hash over every output file's path and bytes: equal hashes, equal worlds."""
    h = hashlib.sha256()
    for rel in sorted(hashes):
        h.update(f"{rel}\t{hashes[rel]}\n".encode())
    return h.hexdigest()


def build_card(cfg: WorldConfig, root: Path, summaries: dict[str, list[dict]], examples: dict[str, list[str]]) -> dict:
    hashes = file_hashes(root)
    shards = [
        {"path": rel, "sha256": digest, "bytes": (root / rel).stat().st_size}
        for rel, digest in hashes.items() if rel.startswith("train/") and rel.endswith(".tar")
    ]
    splits = {}
    for split, items in summaries.items():
        stats = split_stats(items, list(cfg.classes))
        if split == "train":
            stats |= {"format": "webdataset", "shards": shards}
        else:
            files = {k: v for k, v in hashes.items() if k.startswith(f"{split}/")}
            stats |= {"format": "voc2012", "content_hash": content_hash(files)}
        stats["caption_examples"] = examples.get(split, [])
        splits[split] = stats
    return {
        "name": "groupvit synthetic image-caption-mask world",
        "generator_version": GENERATOR_VERSION,
        "classes": list(cfg.classes),
        "class_names": ["background", *cfg.classes],
        "mask_encoding": "VOC palette PNG; pixel = class index (0 background, i + 1 for classes[i])",
        "splits": splits,
        "total_bytes": sum((root / rel).stat().st_size for rel in hashes),
        "content_hash": content_hash(hashes),  # sha256 over every file (see content_hash)
        "config": dataclasses.asdict(cfg),
    }


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def card_markdown(card: dict) -> str:
    splits = card["splits"]
    names = list(splits)
    parts = [
        "# Data card: synthetic image-caption-mask world",
        "",
        f"Content hash (sha256 over every file's path and bytes): `{card['content_hash']}`",
        f"(generator version {card['generator_version']}, {card['total_bytes'] / 1e6:.1f} MB).",
        "",
        "Classes (mask index): " + ", ".join(f"{i} {c}" for i, c in enumerate(card["class_names"])) + ".",
        "",
        "## Splits",
        _table(["split", "format", "samples", "objects", "hard negatives", "caption words mean (min-max)"],
               [[s, splits[s]["format"], splits[s]["samples"], splits[s]["objects"], splits[s]["hard_negatives"],
                 f"{splits[s]['caption_words']['mean']:.1f} ({splits[s]['caption_words']['min']}-"
                 f"{splits[s]['caption_words']['max']})"] for s in names]),
        "",
        "## Per class: objects (share of objects) / images (share of images)",
        _table(["class", *names],
               [[c, *(f"{splits[s]['class_objects'][c]} ({splits[s]['class_object_frequency'][c]:.3f}) / "
                      f"{splits[s]['class_images'][c]} ({splits[s]['class_image_frequency'][c]:.3f})"
                      for s in names)] for c in card["classes"]]),
        "",
        "## Backgrounds",
        _table(["kind", *names], [[k, *(splits[s]["backgrounds"].get(k, 0) for s in names)]
                                  for k in sorted({k for s in names for k in splits[s]["backgrounds"]})]),
        "",
        "## Caption examples",
        *[f"- {s}: {c}" for s in names for c in splits[s]["caption_examples"]],
        "",
        "## Train shards",
        _table(["shard", "bytes", "sha256"],
               [[d["path"], d["bytes"], f"`{d['sha256']}`"] for d in splits.get("train", {}).get("shards", [])]),
        "",
        "## World config",
        "```json",
        json.dumps(card["config"], indent=2),
        "```",
        "",
    ]
    return "\n".join(parts)


def write_card(root: Path, card: dict) -> None:
    atomic_write_text(root / "datacard.json", json.dumps(card, indent=2) + "\n")
    atomic_write_text(root / "datacard.md", card_markdown(card))
