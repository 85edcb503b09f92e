"""Metrics files: one JSON per (model, dataset) and a per-class CSV.

The JSON carries the protocol settings and the checkpoint's sha256 so a number in a table can always be traced
to the exact weights and evaluation rules that produced it. Writes are atomic (temp file + rename) because the
workflow treats an existing file as a finished result.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from groupvit.atomic import atomic_write_text, sha256_file
from groupvit.evaluation.collector import SegmentationResult


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metrics_record(result: SegmentationResult, *, model: str, dataset: str, protocol: dict | Any,
                   checkpoint: str | os.PathLike | None = None, extra: dict | None = None) -> dict:
    """The dict written by `write_metrics_json` (kept separate so callers can aggregate without files)."""
    record: dict[str, Any] = {"model": model, "dataset": dataset, **result.to_dict()}
    record["class_names"] = list(result.class_names)
    record["protocol"] = _jsonable(protocol)
    if checkpoint is not None:
        record["checkpoint"] = {"path": str(checkpoint), "sha256": sha256_file(checkpoint)}
    if extra:
        record.update(_jsonable(extra))
    return _jsonable(record)


def write_metrics_json(path: str | os.PathLike, result: SegmentationResult, *, model: str, dataset: str,
                       protocol: dict | Any, checkpoint: str | os.PathLike | None = None,
                       extra: dict | None = None) -> dict:
    """Write the metrics JSON (strict JSON: NaN as null) and return the record."""
    record = metrics_record(result, model=model, dataset=dataset, protocol=protocol, checkpoint=checkpoint,
                            extra=extra)
    atomic_write_text(Path(path), json.dumps(record, indent=2, allow_nan=False) + "\n")
    return record


def write_per_class_csv(path: str | os.PathLike, result: SegmentationResult, *, model: str = "",
                        dataset: str = "") -> None:
    """One row per class: model, dataset, class index and name, IoU, Acc, ground-truth and predicted pixels.
    Empty cells mark NaN (class neither present nor predicted)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "dataset", "class_index", "class_name", "iou", "acc", "gt_pixels", "pred_pixels"])
    gt_pixels = result.confusion.sum(axis=1)
    pred_pixels = result.confusion.sum(axis=0)
    for i, name in enumerate(result.class_names):
        iou, acc = result.iou[i], result.acc[i]
        writer.writerow([model, dataset, i, name, "" if math.isnan(iou) else f"{iou:.6f}",
                         "" if math.isnan(acc) else f"{acc:.6f}", int(gt_pixels[i]), int(pred_pixels[i])])
    atomic_write_text(Path(path), buf.getvalue())
