"""The evaluation against the real model library (random weights): the contract holds end to end.

The fake-model tests prove the answers; this one proves the pieces fit the actual GroupViTModel (GroupingOutput
fields, patch-size lookup, position-embedding resampling on non-square padded windows, the plain ViT's tokens).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

model_lib = pytest.importorskip("groupvit.model")

from groupvit.evaluation.baselines import ClusterGrouper  # noqa: E402
from groupvit.evaluation.config import EvalConfig  # noqa: E402
from groupvit.evaluation.segmenter import ZeroShotSegmenter  # noqa: E402


def tiny_config():
    cfg = model_lib.ModelConfig()
    image = replace(cfg.image, image_size=32, patch_size=8, embed_dim=32, depths=[1, 1, 1], num_heads=2,
                    num_group_tokens=[8, 4, 0], num_output_groups=[8, 4], drop_path_rate=0.0)
    text = replace(cfg.text, context_length=16, width=32, layers=1, heads=2)
    return replace(cfg, image=image, text=text, proj_dim=16, proj_hidden=32)


def test_segmenter_and_baselines_on_the_real_model():
    torch.manual_seed(0)
    cfg = tiny_config()
    groupvit = model_lib.build_model(cfg)
    names = ["circle", "square", "star"]
    ev = EvalConfig(resize_short=40, mode="slide", window=32, stride=16, batch_size=4, kmeans_k=3, spectral_k=3)
    img = np.random.default_rng(0).integers(0, 255, (30, 45, 3), dtype=np.uint8)
    seg = ZeroShotSegmenter(groupvit, names, ev)
    assert seg.patch_size == 8
    scores = seg.predict_scores([img, img[:20]])
    assert scores[0].shape == (4, 30, 45) and scores[1].shape == (4, 20, 45)
    pred = seg.predict([img])[0]
    assert pred.shape == (30, 45) and pred.min() >= 0 and pred.max() <= 3
    maps = seg.group_maps(img)
    assert len(maps) == 2 and maps[0].shape == (30, 45) and maps[1].max() < 4

    vit = model_lib.build_model(replace(cfg, image=replace(cfg.image, grouping=False)))
    for method in ("pixelwise", "kmeans"):
        seg = ZeroShotSegmenter(vit, names, ev, grouper=ClusterGrouper(vit, method, ev))
        pred = seg.predict([img])[0]
        assert pred.shape == (30, 45) and pred.max() <= 3
