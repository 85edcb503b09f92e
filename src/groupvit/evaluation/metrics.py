"""Segmentation metrics with mmsegmentation 0.x semantics (the evaluator behind GroupViT's published numbers).

Everything here is a pure function of arrays, so the stateful collector (`collector.py`) and the tests share
one definition. mmseg's rule, reproduced exactly:
- pixels whose label is the ignore index (255) are dropped before counting;
- per class: intersection, union = pred area + label area - intersection, summed over the WHOLE split;
- IoU = intersection / union; a class absent from both prediction and ground truth has union 0 and is left
  out (NaN) of the mean; a class that is predicted but absent from the ground truth scores 0;
- mIoU = nanmean of the per-class IoU; aAcc = correct / labelled pixels; per-class Acc = I / label area.
All values are fractions in [0, 1] (mmseg prints percentages; multiply by 100 for the paper's tables).
"""
from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255


def confusion_matrix(pred: np.ndarray, label: np.ndarray, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """[num_classes, num_classes] int64 counts, rows = ground truth, columns = prediction.

    A label outside [0, num_classes) that is not the ignore index raises: a wrong class count would otherwise
    silently drop pixels (mmseg's histc would), and a silently wrong denominator is the worst kind of bug here.
    """
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    label = np.asarray(label).reshape(-1).astype(np.int64)
    if pred.shape != label.shape:
        raise ValueError(f"prediction has {pred.size} pixels, label has {label.size}")
    keep = label != ignore_index
    pred, label = pred[keep], label[keep]
    if label.size and (label.min() < 0 or label.max() >= num_classes):
        bad = np.unique(label[(label < 0) | (label >= num_classes)])
        raise ValueError(f"label values {bad[:10].tolist()} outside [0, {num_classes}) and not ignore {ignore_index}")
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        bad = np.unique(pred[(pred < 0) | (pred >= num_classes)])
        raise ValueError(f"predicted values {bad[:10].tolist()} outside [0, {num_classes})")
    flat = np.bincount(label * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def areas_from_confusion(conf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mmseg's four per-class vectors: (intersection, union, prediction area, label area)."""
    conf = np.asarray(conf, dtype=np.int64)
    intersect = np.diag(conf).copy()
    area_pred = conf.sum(axis=0)
    area_label = conf.sum(axis=1)
    return intersect, area_pred + area_label - intersect, area_pred, area_label


def iou_per_class(intersect: np.ndarray, union: np.ndarray) -> np.ndarray:
    """I/U with NaN where the union is empty (class neither predicted nor present)."""
    intersect = np.asarray(intersect, dtype=np.float64)
    union = np.asarray(union, dtype=np.float64)
    out = np.full(union.shape, np.nan)
    np.divide(intersect, union, out=out, where=union > 0)
    return out


def nanmean(values: np.ndarray) -> float:
    """Mean over the finite entries; NaN (not a warning) when there are none."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def summarize_confusion(conf: np.ndarray) -> dict:
    """Split-level metrics from a summed confusion matrix: mIoU, aAcc, mAcc and the per-class vectors."""
    intersect, union, _, area_label = areas_from_confusion(conf)
    iou = iou_per_class(intersect, union)
    acc = iou_per_class(intersect, area_label)  # same NaN rule: classes absent from the ground truth
    total = area_label.sum()
    return {
        "mIoU": nanmean(iou),
        "aAcc": float(intersect.sum() / total) if total else float("nan"),
        "mAcc": nanmean(acc),
        "IoU": iou,
        "Acc": acc,
    }


def mean_iou(pred: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX) -> float:
    """mIoU of one prediction (or a stack of them counted as one split)."""
    return summarize_confusion(confusion_matrix(pred, label, num_classes, ignore_index))["mIoU"]


def bootstrap_miou(intersect: np.ndarray, union: np.ndarray, resamples: int = 1000, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the SPLIT mIoU when images are resampled with replacement.

    intersect, union: [num_images, num_classes] per-image areas. Resampling images (not pixels) is what the
    variation between evaluation sets would look like; the split statistic is recomputed each time with the
    mmseg rule (sums first, then I/U), so the interval brackets the number the tables report.
    """
    intersect = np.asarray(intersect, dtype=np.float64)
    union = np.asarray(union, dtype=np.float64)
    n = intersect.shape[0]
    if n == 0 or resamples <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        # multinomial counts = how often each image is drawn in each resample
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=stop - start).astype(np.float64)
        i_sum, u_sum = weights @ intersect, weights @ union
        iou = np.full(i_sum.shape, np.nan)
        np.divide(i_sum, u_sum, out=iou, where=u_sum > 0)
        with np.errstate(all="ignore"):
            valid = ~np.isnan(iou)
            stats[start:stop] = np.where(valid, iou, 0).sum(1) / np.maximum(valid.sum(1), 1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def distribution_summary(values: np.ndarray) -> dict:
    """mean, std, standard error, median and quartiles of per-image scores (NaN images left out)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        nan = float("nan")
        return {"n": 0, "mean": nan, "std": nan, "sem": nan, "median": nan, "q25": nan, "q75": nan}
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    q25, med, q75 = np.quantile(values, [0.25, 0.5, 0.75])
    return {"n": int(values.size), "mean": float(values.mean()), "std": std, "sem": std / np.sqrt(values.size),
            "median": float(med), "q25": float(q25), "q75": float(q75)}
