"""Readers on tiny fixtures in each real layout (VOC, Context, COCO-Object conversion, synthetic)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from groupvit.evaluation.datasets import (
    DatasetLayoutError,
    coco_stuff_to_object,
    convert_coco_stuff_to_object,
    load_coco_object,
    load_context,
    load_eval_dataset,
    load_synthetic,
    load_voc,
)
from groupvit.evaluation.datasets.names import COCO_OBJECT_CLASSES, CONTEXT_PROMPT_NAMES, VOC_PROMPT_NAMES


def _palette_png(path, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(mask.astype(np.uint8), mode="P")
    im.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    im.save(path)


def _jpg(path, h=12, w=16, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)


def _voc_like(root, ids, ann="SegmentationClass", sets="Segmentation", ext=".jpg"):
    masks = {}
    for k, i in enumerate(ids):
        _jpg(root / "JPEGImages" / f"{i}{ext}", seed=k)
        m = np.zeros((12, 16), np.uint8)
        m[2:6, 3:9] = k + 1
        m[0, :] = 255
        _palette_png(root / ann / f"{i}.png", m)
        masks[i] = m
    (root / "ImageSets" / sets).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / sets / "val.txt").write_text("\n".join(ids) + "\n")
    return masks


def test_voc_reader(tmp_path):
    root = tmp_path / "VOC2012"
    masks = _voc_like(root, ["2007_000033", "2007_000042"])
    ds = load_voc(root)
    assert len(ds) == 2 and ds.num_classes == 21
    item = ds[1]
    assert item.id == "2007_000042" and item.image.shape == (12, 16, 3) and item.image.dtype == np.uint8
    np.testing.assert_array_equal(item.mask, masks["2007_000042"])  # palette indices, not colours
    assert ds.foreground_prompts[10] == "table" and "background" not in ds.foreground_prompts
    assert VOC_PROMPT_NAMES[16] == "plant" and VOC_PROMPT_NAMES[20] == "monitor"
    assert len(ds.head(1)) == 1


def test_missing_dataset_names_what_and_how(tmp_path):
    root = tmp_path / "data" / "voc" / "VOCdevkit" / "VOC2012"
    with pytest.raises(DatasetLayoutError) as err:
        load_voc(root)
    msg = str(err.value)
    assert "ImageSets/Segmentation/val.txt" in msg and "snakemake" in msg and "eval.datasets" in msg
    _voc_like(root, ["a", "b"])
    (root / "SegmentationClass" / "b.png").unlink()
    with pytest.raises(DatasetLayoutError, match="b.png"):
        load_voc(root)


def test_context_reader(tmp_path):
    root = tmp_path / "VOC2010"
    masks = _voc_like(root, ["2008_000008"], ann="SegmentationClassContext", sets="SegmentationContext")
    ds = load_context(root)
    assert ds.num_classes == 60 and ds.class_names[0] == "background"
    np.testing.assert_array_equal(ds[0].mask, masks["2008_000008"])
    assert CONTEXT_PROMPT_NAMES[1] == "airplane" and ds.class_names[1] == "aeroplane"
    with pytest.raises(DatasetLayoutError, match="SegmentationContext"):
        load_context(tmp_path / "nowhere")


def test_coco_stuff_to_object_mapping():
    raw = np.array([[0, 11, 12, 89], [90, 91, 181, 255]], np.uint8)  # person, unused, stop sign, toothbrush, ...
    out = coco_stuff_to_object(raw)
    np.testing.assert_array_equal(out, [[1, 0, 12, 80], [0, 0, 0, 0]])
    assert COCO_OBJECT_CLASSES[12] == "stop sign" and COCO_OBJECT_CLASSES[80] == "toothbrush"
    every_thing = coco_stuff_to_object(np.arange(256, dtype=np.uint8))
    assert sorted(set(every_thing.tolist()) - {0}) == list(range(1, 81))


def test_coco_object_reader_and_conversion(tmp_path):
    root = tmp_path / "coco"
    raw = np.full((12, 16), 150, np.uint8)  # stuff
    raw[3:7, 3:7] = 0  # person
    raw[0] = 255
    (root / "annotations" / "val2017").mkdir(parents=True)
    for i in ("000000000139", "000000000285"):
        _jpg(root / "images" / "val2017" / f"{i}.jpg")
        Image.fromarray(raw).save(root / "annotations" / "val2017" / f"{i}.png")
    on_the_fly = load_coco_object(root)
    assert on_the_fly.num_classes == 81
    assert convert_coco_stuff_to_object(root / "annotations" / "val2017") == 2
    converted = load_coco_object(root)
    assert converted.samples[0].mask_path.name == "000000000139_instanceTrainIds.png"
    expected = np.zeros((12, 16), np.uint8)
    expected[3:7, 3:7] = 1
    np.testing.assert_array_equal(converted[0].mask, expected)
    np.testing.assert_array_equal(on_the_fly[0].mask, expected)
    with pytest.raises(DatasetLayoutError, match="images/val2017"):
        load_coco_object(tmp_path / "empty")


def test_synthetic_reader(tmp_path):
    root = tmp_path / "eval"
    _voc_like(root, ["000000000", "000000001"], ext=".png")
    (root / "class_names.txt").write_text("background\ncircle\nsquare\n")
    (root / "annotations.jsonl").write_text(json.dumps({"key": "000000000", "objects": []}) + "\n")
    ds = load_eval_dataset("synthetic", root)
    assert ds.class_names == ["background", "circle", "square"] and ds.foreground_prompts == ["circle", "square"]
    assert ds[0].image.shape == (12, 16, 3)
    (root / "class_names.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="class_names.txt"):
        load_synthetic(root)
