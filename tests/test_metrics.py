"""mmseg-semantics metrics: a hand-worked example, agreement with sklearn, the oracle, the collector, the files."""
from __future__ import annotations

import csv
import hashlib
import json
import math

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from groupvit.evaluation.collector import SegmentationMeter
from groupvit.evaluation.metrics import bootstrap_miou, confusion_matrix, mean_iou, summarize_confusion
from groupvit.evaluation.report_io import sha256_file, write_metrics_json, write_per_class_csv


def test_hand_worked_example():
    # valid (gt, pred) pairs: (0,0) (1,0) (1,1) (1,1) (2,2); the last pixel is ignored; class 3 absent -> NaN
    pred = np.array([[0, 0, 1], [1, 2, 2]])
    gt = np.array([[0, 1, 1], [1, 2, 255]])
    s = summarize_confusion(confusion_matrix(pred, gt, 4))
    np.testing.assert_allclose(s["IoU"][:3], [1 / 2, 2 / 3, 1.0])
    assert math.isnan(s["IoU"][3])
    assert s["mIoU"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert s["aAcc"] == pytest.approx(4 / 5)


def test_class_predicted_but_absent_from_gt_scores_zero():
    pred = np.array([[0, 3, 1], [1, 2, 2]])
    gt = np.array([[0, 1, 1], [1, 2, 255]])
    s = summarize_confusion(confusion_matrix(pred, gt, 4))
    np.testing.assert_allclose(s["IoU"], [1.0, 2 / 3, 1.0, 0.0])
    assert s["mIoU"] == pytest.approx((1 + 2 / 3 + 1 + 0) / 4)


def test_agrees_with_sklearn_on_random_labels():
    rng = np.random.default_rng(0)
    c = 7
    gt = rng.integers(0, c, size=(3, 40, 50))
    gt[rng.random(gt.shape) < 0.15] = 255
    pred = np.where(rng.random(gt.shape) < 0.6, np.where(gt == 255, 0, gt), rng.integers(0, c, size=gt.shape))
    pred[pred == 255] = 0
    ours = confusion_matrix(pred, gt, c)
    valid = gt != 255
    ref = sk_confusion_matrix(gt[valid], pred[valid], labels=list(range(c)))
    np.testing.assert_array_equal(ours, ref)
    inter = np.diag(ref)
    union = ref.sum(0) + ref.sum(1) - inter
    np.testing.assert_allclose(summarize_confusion(ours)["IoU"], inter / union)
    # summed over images = one split: the collector's split mIoU equals the stacked computation
    meter = SegmentationMeter([str(i) for i in range(c)])
    for p, g in zip(pred, gt):
        meter.update(p, g)
    assert meter.result().miou == pytest.approx(float(np.mean(inter / union)))


def test_oracle_scores_100_and_ignore_does_not_matter():
    rng = np.random.default_rng(1)
    meter = SegmentationMeter(["bg", "a", "b"])
    for _ in range(3):
        gt = rng.integers(0, 3, size=(16, 16))
        gt[:2] = 255
        pred = np.where(gt == 255, rng.integers(0, 3, size=gt.shape), gt)
        assert meter.update(pred, gt) == pytest.approx(1.0)
    r = meter.result(bootstrap=50)
    assert 100 * r.miou == pytest.approx(100.0)
    assert r.aacc == pytest.approx(1.0)
    assert r.miou_ci95 == pytest.approx((1.0, 1.0))


def test_invalid_labels_raise():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.zeros((2, 2)), np.full((2, 2), 7), 3)


def test_per_image_distribution_and_bootstrap_brackets_split_miou():
    rng = np.random.default_rng(2)
    meter = SegmentationMeter(["bg", "a", "b", "c"])
    for _ in range(20):
        gt = rng.integers(0, 4, size=(12, 12))
        pred = np.where(rng.random(gt.shape) < 0.7, gt, rng.integers(0, 4, size=gt.shape))
        meter.update(pred, gt)
    r = meter.result(bootstrap=300, seed=0)
    assert len(r.per_image_miou) == 20
    lo, hi = r.miou_ci95
    assert lo < r.miou < hi
    assert bootstrap_miou(np.zeros((0, 4)), np.zeros((0, 4))) != bootstrap_miou(np.zeros((0, 4)), np.zeros((0, 4)))


def test_mean_iou_helper():
    assert mean_iou(np.array([0, 1]), np.array([0, 1]), 2) == pytest.approx(1.0)


def test_metrics_json_and_csv(tmp_path):
    meter = SegmentationMeter(["background", "cat", "dog"])
    meter.update(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [1, 255]]), "img0")
    result = meter.result()
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights" * 1000)
    assert sha256_file(ckpt) == hashlib.sha256(b"weights" * 1000).hexdigest()
    out = tmp_path / "m" / "metrics.json"
    write_metrics_json(out, result, model="m", dataset="voc", protocol={"bg_thresh": 0.95}, checkpoint=ckpt)
    rec = json.loads(out.read_text())
    assert rec["checkpoint"]["sha256"] == sha256_file(ckpt)
    assert rec["per_class_IoU"]["dog"] is None  # NaN -> null: dog neither present nor predicted
    assert rec["mIoU"] == pytest.approx(1.0)
    assert rec["protocol"]["bg_thresh"] == 0.95
    write_per_class_csv(tmp_path / "pc.csv", result, model="m", dataset="voc")
    rows = list(csv.DictReader((tmp_path / "pc.csv").open()))
    assert [r["class_name"] for r in rows] == ["background", "cat", "dog"]
    assert rows[2]["iou"] == ""
