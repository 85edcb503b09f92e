"""The segmenter end to end on a FAKE model whose right answer is known by construction, plus the pure pieces
(background rule, top-k gate, windows) and the baselines / classification / overlays that run on the same model.

The fake model implements the model contract on colours: patch tokens are mean patch colours; red patches form
group 0 (embedding = "cat"), blue patches group 1 ("dog"), grey patches group 2 (equidistant from every class,
so its scores are flat and the background rule must take it). So on any red/blue/grey image the correct label
map is red -> cat (1), blue -> dog (2), grey -> background (0).
"""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from groupvit.evaluation.baselines import METHODS, ClusterGrouper, cluster_tokens, segments_from_labels
from groupvit.evaluation.classification import evaluate_object_crops, object_boxes
from groupvit.evaluation.config import EvalConfig
from groupvit.evaluation.datasets import load_synthetic
from groupvit.evaluation.evaluate import collect_qualitative, evaluate_group_oracle, evaluate_segmentation
from groupvit.evaluation.scoring import group_class_probs, pixel_class_scores, suppress_background_groups
from groupvit.evaluation.segmenter import ZeroShotSegmenter
from groupvit.evaluation.split_score import gated_mious
from groupvit.evaluation.windows import resized_shape, sliding_windows

CLASSES = ["cat", "dog", "bird"]
RED, BLUE, GREY = (255, 0, 0), (0, 0, 255), (128, 128, 128)
PROTOS = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [0.5, 0.5, 0.5]])
PATCH = 8
NO_NORM = {"mean": (0, 0, 0), "std": (1, 1, 1)}


class FakeGroupViT(nn.Module):
    patch_size = PATCH

    def __init__(self) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)))
        self.vocab = {w: i + 1 for i, w in enumerate(CLASSES)}

    # text side: the embedding of a prompt is the one-hot of the class word it contains
    def tokenizer(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), 8, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [self.vocab.get(w.strip(".,"), 0) for w in t.split()]
            out[i, : len(ids[:8])] = torch.tensor(ids[:8])
        return out

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        first = torch.where(tokens > 0, tokens, 99).amin(dim=-1)
        emb = F.one_hot(first.clamp(max=4) - 1, 4).float()
        return F.normalize(emb.to(self.logit_scale.device), dim=-1)

    # image side
    def encode_image_tokens(self, image: torch.Tensor):
        grid = F.avg_pool2d(image, PATCH)  # [B, 3, h, w]
        return grid.flatten(2).transpose(1, 2), (grid.shape[-2], grid.shape[-1])

    def project_image(self, feats: torch.Tensor) -> torch.Tensor:
        r, g, b = feats.unbind(-1)
        emb = torch.stack([r, b, g, torch.zeros_like(r)], dim=-1)  # red->cat, blue->dog, grey->flat
        return F.normalize(emb, dim=-1)

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        tokens, _ = self.encode_image_tokens(image)
        return self.project_image(tokens.mean(1))

    def encode_image_groups(self, image: torch.Tensor):
        tokens, (h, w) = self.encode_image_tokens(image)
        dist = ((tokens[:, :, None, :] - PROTOS[None, None]) ** 2).sum(-1)  # [B, N, 3]
        soft = (-50 * dist).softmax(-1).transpose(1, 2).reshape(-1, 3, h, w)
        hard = F.one_hot(soft.argmax(1), 3).permute(0, 3, 1, 2).float()
        groups = self.project_image(PROTOS)[None].expand(image.shape[0], -1, -1)
        return SimpleNamespace(image_embed=self.encode_image(image), group_embeds=groups, pixel_to_group=soft,
                               pixel_to_group_hard=hard, stage_assignments=[soft], stage_assignments_hard=[hard])


def scene(h: int = 32, w: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Stripes on the 8-px grid: red cols 8-23, blue cols 24-31, grey elsewhere; returns (image, labels).

    Stripes, not blocks: bilinear upsampling of soft group maps erodes a convex corner where one group meets
    two tokens of another (the official inference does the same), so only straight boundaries have an exact
    pixel answer. Transposing the image tests the vertical direction.
    """
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = GREY
    lab = np.zeros((h, w), np.int64)
    img[:, 8:24] = RED
    lab[:, 8:24] = 1
    img[:, 24:32] = BLUE
    lab[:, 24:32] = 2
    return img, lab


def variants(img: np.ndarray, lab: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The scene, mirrored, and transposed (horizontal stripes)."""
    return [(img, lab), (img[:, ::-1].copy(), lab[:, ::-1].copy()),
            (img.transpose(1, 0, 2).copy(), lab.T.copy())]


def cfg(**kw) -> EvalConfig:
    base = dict(resize_short=0, mode="whole", window=32, stride=16, batch_size=4, topk_classes=5, bg_thresh=0.95)
    base.update(kw)
    return EvalConfig(**base)


@pytest.fixture(scope="module")
def model() -> FakeGroupViT:
    return FakeGroupViT()


@pytest.mark.parametrize("kw", [
    dict(mode="whole"),
    dict(mode="slide", window=32, stride=16),
    dict(mode="slide", window=16, stride=8, batch_size=3),
    dict(mode="whole", assignment="hard"),
    dict(mode="slide", resize_short=64, window=32, stride=16),
])
def test_segmenter_recovers_constructed_answer(model, kw):
    img, lab = scene()
    seg = ZeroShotSegmenter(model, ["background", *CLASSES], cfg(**kw), **NO_NORM)
    assert seg.class_names == CLASSES and seg.num_classes == 4
    scores = seg.predict_scores([img, img])
    assert scores[0].shape == (4, 32, 48)
    cases = variants(img, lab)
    for pred, (_, expected) in zip(seg.predict([im for im, _ in cases]), cases):  # batched across images
        np.testing.assert_array_equal(pred, expected)


def test_sliding_window_on_image_smaller_than_window(model):
    assert sliding_windows(30, 45, 64, 32) == [(0, 30, 0, 45)]
    img, lab = scene(30, 45)  # not a multiple of the patch: padded to 32 x 48 and cropped back
    seg = ZeroShotSegmenter(model, CLASSES, cfg(mode="slide", window=64, stride=32), **NO_NORM)
    for im, expected in (variants(img, lab)[0], variants(img, lab)[2]):  # mirrored stripes would leave the grid
        np.testing.assert_array_equal(seg.predict([im])[0], expected)


def test_window_grid_matches_mmseg():
    wins = sliding_windows(448, 600, 448, 224)
    assert wins == [(0, 448, 0, 448), (0, 448, 152, 600)]
    assert len(sliding_windows(500, 700, 448, 224)) == 2 * 3
    assert resized_shape(375, 500, 448, 2048) == (448, 597)
    assert resized_shape(100, 5000, 448, 2048) == (41, 2048)
    assert resized_shape(10, 20, 0) == (10, 20)


def test_background_threshold_moves_pixels():
    probs = torch.tensor([[[0.97, 0.01, 0.02], [0.60, 0.30, 0.10], [0.20, 0.75, 0.05]]])  # [1, G=3, C=3]
    index = torch.tensor([[[0, 1, 2]]])  # one pixel per group
    s = pixel_class_scores(index, probs, bg_thresh=0.9)
    assert s.argmax(1).tolist() == [[[1, 0, 0]]]  # only group 0 (0.97 >= 0.9) stays foreground
    s = pixel_class_scores(index, probs, bg_thresh=0.7)
    assert s.argmax(1).tolist() == [[[1, 0, 2]]]  # 0.75 now clears the threshold
    weak = probs * 0.5  # best group 0.485 < bg_thresh: threshold drops to it, so its pixels survive
    s = pixel_class_scores(index, weak, bg_thresh=0.9)
    assert s.argmax(1).tolist() == [[[1, 0, 0]]]
    valid = torch.tensor([[False, True, True]])  # an invalid (padding) group does not set the threshold
    s = pixel_class_scores(index, weak, bg_thresh=0.9, group_valid=valid)
    assert s.argmax(1).tolist() == [[[1, 0, 2]]]


def test_background_rule_end_to_end(model):
    img, lab = scene()
    strict = ZeroShotSegmenter(model, CLASSES, cfg(), bg_thresh=1.0, **NO_NORM)  # min(1, best) = best score
    np.testing.assert_array_equal(strict.predict([img])[0], lab)
    loose = ZeroShotSegmenter(model, CLASSES, cfg(), bg_thresh=0.0, **NO_NORM)  # nothing is background
    assert (loose.predict([img])[0] > 0).all()


def test_background_prompts_turn_the_groups_they_name_into_background(model):
    """eval.background_prompts: a group closer to a background prompt than to every class becomes background even
    with no threshold; the other groups keep their labels. Here only "cat" is a class and "dog" stands in for a
    background phrase, so the blue (dog) stripe turns background while red stays cat and grey (equidistant) stays
    with the class."""
    img, lab = scene()
    plain = ZeroShotSegmenter(model, ["cat"], cfg(), bg_thresh=0.0, **NO_NORM)
    assert (plain.predict([img])[0] == 1).all()  # one class, no threshold: everything is cat
    named = ZeroShotSegmenter(model, ["cat"], cfg(background_prompts=["dog"]), bg_thresh=0.0, **NO_NORM)
    np.testing.assert_array_equal(named.predict([img])[0], np.where(lab == 2, 0, 1))
    assert named.protocol()["background_prompts"] == ["dog"]
    probs = torch.full((1, 2, 1), 0.9)
    groups = torch.tensor([[[1.0, 0.0], [0.2, 1.0]]])  # group 1 is nearer the background prompt
    out = suppress_background_groups(probs, groups, torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))
    torch.testing.assert_close(out[0, :, 0], torch.tensor([0.9, 0.0]))
    with pytest.raises(ValueError, match=r"background_prompts \['cat'\]"):  # a class can't also mean background
        ZeroShotSegmenter(model, ["cat"], cfg(background_prompts=["Cat "]), bg_thresh=0.0, **NO_NORM)


def test_topk_gate_keeps_image_level_classes():
    text = torch.eye(3)
    groups = torch.eye(3)[None, :2]  # group 0 = class 0, group 1 = class 1
    image = torch.tensor([[1.0, 0.0, 0.0]])  # image-level top-1: class 0 only
    gated = group_class_probs(groups, image, text, 100.0, topk=1)
    assert gated[0, 0, 0] == pytest.approx(1.0, abs=1e-4) and gated[0, 1].max() < 1e-4
    open_ = group_class_probs(groups, image, text, 100.0, topk=0)
    assert open_[0, 1, 1] == pytest.approx(1.0, abs=1e-4)


def test_dataset_loop_oracle_and_qualitative(model, tmp_path):
    from groupvit.data.voc import write_palette_png

    root = tmp_path / "eval"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    img, lab = scene()
    ids = ["000000000", "000000001", "000000002"]
    for k, i in enumerate(ids):
        im, lb = (img, lab) if k % 2 == 0 else (img[:, ::-1].copy(), lab[:, ::-1].copy())
        from PIL import Image

        Image.fromarray(im).save(root / "JPEGImages" / f"{i}.png")
        write_palette_png(root / "SegmentationClass" / f"{i}.png", lb.astype(np.uint8))
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(ids))
    (root / "class_names.txt").write_text("background\n" + "\n".join(CLASSES))
    ds = load_synthetic(root)
    seg = ZeroShotSegmenter(model, ds.foreground_prompts, cfg(mode="slide"), dataset="synthetic", **NO_NORM)
    result = evaluate_segmentation(seg, ds, images_per_step=2, bootstrap=20)
    assert result.num_images == 3 and result.miou == pytest.approx(1.0)
    assert math.isnan(result.iou[3])  # bird: neither present nor predicted
    assert evaluate_group_oracle(seg, ds, max_images=2).miou == pytest.approx(1.0)
    # with only the image's top class allowed to name a segment, the smaller (blue, dog) stripe loses its name
    gated = gated_mious(seg, ds)
    assert gated["2"] == pytest.approx(1.0) and gated["1"] < 0.8
    assert json.loads(json.dumps(seg.protocol()))["bg_thresh"] == 0.95  # synthetic: the global default
    assert ZeroShotSegmenter(model, CLASSES, EvalConfig(), dataset="context").bg_thresh == 0.35
    samples = collect_qualitative(seg, ds, [0])
    assert samples[0].stage_groups[0].shape == lab.shape
    np.testing.assert_array_equal(samples[0].prediction, lab)

    # single-object crops: connected components without annotations, and with the world's annotations.jsonl
    boxes = object_boxes(lab, None, {}, min_pixels=4)
    assert sorted(boxes) == [(1, (8, 0, 24, 32)), (2, (24, 0, 32, 32))]
    acc = evaluate_object_crops(model, ds, EvalConfig(cls_resize=0, cls_crop=0, batch_size=4), mean=(0, 0, 0),
                                std=(1, 1, 1))
    assert acc.num_images == 6 and acc.top1 == pytest.approx(1.0)
    objects = [{"class": "dog", "center": [0.6, 0.5], "pixels": 256}]
    (root / "annotations.jsonl").write_text(json.dumps({"key": ids[0], "objects": objects}) + "\n")
    acc = evaluate_object_crops(model, ds, EvalConfig(cls_resize=0, cls_crop=0), max_images=1, **NO_NORM)
    assert acc.num_images == 1 and acc.top1 == pytest.approx(1.0)


@pytest.mark.parametrize("method", METHODS)
def test_clustering_baselines_on_random_features(method):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(48, 16)).astype(np.float32)
    labels = cluster_tokens(feats, method, EvalConfig(kmeans_k=4, spectral_k=4))
    assert labels.shape == (48,) and labels.min() == 0
    k = labels.max() + 1
    assert set(labels.tolist()) == set(range(k))  # contiguous ids
    if method in ("kmeans", "spectral"):
        assert k <= 4
    tokens = torch.from_numpy(feats)[None]
    seg_feats, valid, p2g = segments_from_labels(tokens, [torch.from_numpy(labels)], (6, 8))
    assert p2g.shape == (1, k, 6, 8) and bool(valid.all())
    torch.testing.assert_close(p2g.sum(1), torch.ones(1, 6, 8))  # every token in exactly one segment
    torch.testing.assert_close(seg_feats[0, labels[0]], tokens[0, labels == labels[0]].mean(0))


@pytest.mark.parametrize("method", METHODS)
def test_clustering_baselines_end_to_end(model, method):
    img, lab = scene()
    c = cfg(mode="whole", kmeans_k=3, spectral_k=3)
    seg = ZeroShotSegmenter(model, CLASSES, c, grouper=ClusterGrouper(model, method, c), **NO_NORM)
    for im, expected in variants(img, lab):
        np.testing.assert_array_equal(seg.predict([im])[0], expected)


@pytest.mark.parametrize("method", ["groupvit", "kmeans"])
def test_group_maps_of_mixed_sizes_in_one_call_match_one_image_at_a_time(model, method):
    # the oracle and readout statistics pass: batches of 2 over three shapes (two share one), every map at its
    # own image's size and equal to what that image alone gives
    img, lab = scene()
    c = cfg(mode="whole", batch_size=2, kmeans_k=3)
    grouper = None if method == "groupvit" else ClusterGrouper(model, method, c)
    seg = ZeroShotSegmenter(model, CLASSES, c, grouper=grouper, **NO_NORM)
    images = [im for im, _ in variants(img, lab)] + [scene(40, 24)[0]]
    batched = seg.group_maps_batch(images)
    for im, maps in zip(images, batched):
        alone = seg.group_maps(im)
        assert len(maps) == len(alone) == 1 and maps[0].shape == im.shape[:2]
        np.testing.assert_array_equal(maps[0], alone[0])
    np.testing.assert_array_equal(batched[0][0] == batched[0][0][0, 0], lab == 0)  # grey is one group


def test_a_clustering_baseline_clusters_each_image_once_for_scoring_and_oracle(model, monkeypatch):
    import groupvit.evaluation.baselines as baselines

    calls = []
    cluster = baselines.cluster_tokens
    monkeypatch.setattr(baselines, "cluster_tokens", lambda x, *a: calls.append(1) or cluster(x, *a))
    img, lab = scene()
    c = cfg(mode="whole", kmeans_k=3)
    seg = ZeroShotSegmenter(model, CLASSES, c, grouper=ClusterGrouper(model, "kmeans", c), **NO_NORM)
    images = [im for im, _ in variants(img, lab)]
    predictions = seg.predict(images)
    maps = seg.group_maps_batch(images)
    assert len(calls) == 3  # the group maps reuse the scoring pass's clusters
    for pred, (_, expected), m in zip(predictions, variants(img, lab), maps):
        np.testing.assert_array_equal(pred, expected)
        assert len(np.unique(m[0])) == 3
    seg.group_maps(scene(40, 24)[0])  # new tokens: clustered
    assert len(calls) == 4


def test_segment_images_and_figures(model, tmp_path):
    from PIL import Image

    from groupvit.evaluation.figures import per_class_iou_bar, per_class_iou_heatmap, qualitative_grid
    from groupvit.evaluation.overlays import segment_images

    img, lab = scene()
    paths = []
    for name in ("a.jpg", "b.png"):
        Image.fromarray(img).save(tmp_path / name)
        paths.append(tmp_path / name)
    out = segment_images(model, paths, ["cat", "dog"], tmp_path / "out", cfg(mode="slide"), **NO_NORM)
    assert [p.name for p in out] == ["a_segment.png", "b_segment.png"] and all(p.stat().st_size > 0 for p in out)

    seg = ZeroShotSegmenter(model, CLASSES, cfg(), **NO_NORM)
    from groupvit.evaluation.evaluate import QualitativeSample

    samples = [QualitativeSample("x", img, lab, seg.group_maps(img), seg.predict([img])[0])] * 2
    for p in (qualitative_grid(samples, seg.labels, tmp_path / "grid.png", title="t"),
              per_class_iou_bar({"cat": 0.5, "dog": float("nan")}, tmp_path / "bar.png", miou=0.5),
              per_class_iou_heatmap({"m1": {"cat": 0.5, "dog": None}, "m2": {"cat": 0.2, "dog": 0.9}},
                                    tmp_path / "heat.png")):
        assert p.is_file() and p.stat().st_size > 1000


def test_vectorised_mean_shift_matches_sklearn():
    from sklearn.cluster import MeanShift, estimate_bandwidth
    from sklearn.metrics import adjusted_rand_score

    from groupvit.evaluation.baselines import mean_shift

    rng = np.random.default_rng(3)
    centers = rng.normal(size=(4, 16))
    x = centers[rng.integers(0, 4, 150)] + 0.4 * rng.normal(size=(150, 16))
    bw = estimate_bandwidth(x, quantile=0.1, random_state=0)
    ours = mean_shift(x, bw)
    ref = MeanShift(bandwidth=bw).fit_predict(x)
    assert ours.max() == ref.max() and adjusted_rand_score(ours, ref) == pytest.approx(1.0)
