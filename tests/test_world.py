"""The synthetic world keeps its promises: deterministic bytes, captions that name exactly what the masks hold,
masks aligned with pixels, bounded occlusion, honest hard negatives, no colour or area shortcut to the class,
and VOC/webdataset files that standard readers open."""
from __future__ import annotations

import dataclasses
import json
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from groupvit.data.voc import VOC_PALETTE, read_mask, write_palette_png
from groupvit.data.world import generate as gen
from groupvit.data.world.captions import class_words
from groupvit.data.world.colours import COLOUR_NAMES
from groupvit.data.world.config import CaptionConfig, WorldConfig
from groupvit.data.world.generate import generate_world, render_sample
from groupvit.data.world.render import object_mask
from groupvit.data.world.sample import build_record, render_record
from groupvit.data.world.shapes import SHAPE_NAMES
from groupvit.data.world.validate import validate_world

SCHEMA = Path(__file__).resolve().parents[1] / "src" / "groupvit" / "config" / "config.schema.yaml"


def tiny(**overrides) -> WorldConfig:
    base = dict(num_train=48, num_val=10, num_eval=10, shard_size=20, hard_negative_rate=0.25)
    return dataclasses.replace(WorldConfig(), **(base | overrides))


def all_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[WorldConfig, Path, dict]:
    cfg = tiny()
    out = tmp_path_factory.mktemp("world") / "synthetic"
    card = generate_world(cfg, out, workers=1, progress=False)
    return cfg, out, card


# ------------------------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_any_worker_count(world, tmp_path):
    cfg, out, card = world
    again = generate_world(cfg, tmp_path / "again", workers=2, progress=False)
    first, second = all_bytes(out), all_bytes(tmp_path / "again")
    assert sorted(first) == sorted(second)
    assert [k for k in first if first[k] != second[k]] == []
    assert again["content_hash"] == card["content_hash"]
    assert not list(tmp_path.glob(".again*")), "temp directories must not survive a finished run"


def test_different_seed_different_bytes(world, tmp_path):
    cfg, out, _ = world
    generate_world(dataclasses.replace(cfg, seed=cfg.seed + 1), tmp_path / "other", workers=1, progress=False)
    for rel in ("train/shard-000000.tar", "val/SegmentationClass/000000000.png", "eval/JPEGImages/000000003.jpg"):
        assert (out / rel).read_bytes() != (tmp_path / "other" / rel).read_bytes(), rel


def test_splits_use_different_streams():
    cfg = tiny()
    images = [np.asarray(render_sample(cfg, split, 0)[0]) for split in ("train", "val", "eval")]
    assert not np.array_equal(images[0], images[1]) and not np.array_equal(images[1], images[2])


def test_interrupted_run_keeps_the_previous_world(tmp_path, monkeypatch):
    cfg = tiny(num_train=10, num_val=3, num_eval=3, shard_size=5)
    generate_world(cfg, tmp_path / "w", workers=1, progress=False)
    before = all_bytes(tmp_path / "w")
    calls = []

    def failing(cfg, root, unit):
        if calls:
            raise RuntimeError("simulated crash")
        calls.append(unit)
        return real(cfg, root, unit)

    real = gen._make_unit
    monkeypatch.setattr(gen, "_make_unit", failing)
    with pytest.raises(RuntimeError):
        generate_world(dataclasses.replace(cfg, seed=5), tmp_path / "w", workers=1, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["w"], "no temp directory may survive a failed run"
    assert all_bytes(tmp_path / "w") == before


# ------------------------------------------------------------------------------------------- captions
def test_caption_nouns_match_mask_classes():
    cfg = tiny(hard_negative_rate=0.3)
    for split, n in (("train", 60), ("eval", 30)):
        for i in range(n):
            _, mask, meta = render_sample(cfg, split, i)
            in_mask = {cfg.classes[c - 1] for c in np.unique(mask).tolist() if c}
            words = class_words(meta["caption"])
            assert set(words) == in_mask, (meta["caption"], in_mask)
            assert meta["nouns"] == list(dict.fromkeys(words))
            assert {o["class"] for o in meta["objects"]} == in_mask


def test_background_phrase_names_the_background_the_image_shows():
    """A caption that names its background names the image's own background kind; the nouns stay the classes."""
    from groupvit.data.world.spec import BACKGROUND_WORDS

    cfg = tiny(background_clutter=1.0, caption=CaptionConfig(background_word_rate=1.0))
    kinds = set()
    for i in range(40):
        _, _, meta = render_sample(cfg, "train", i)
        assert f"on a {BACKGROUND_WORDS[meta['background']]} background" in meta["caption"]
        assert meta["nouns"] == list(dict.fromkeys(class_words(meta["caption"])))
        kinds.add(meta["background"])
    assert len(kinds) >= 4 and "plain" not in kinds  # clutter 1.0: always one of the textured kinds


def test_counts_use_plural_nouns():
    cfg = tiny(caption=CaptionConfig(count_words=True), objects_per_image=[3, 3], classes=["circle", "star"])
    captions = [render_sample(cfg, "train", i)[2]["caption"] for i in range(30)]
    assert any(re.search(r"\b(two|three) \w*\s?\w*\s?(circles|stars)\b", c) for c in captions), captions


def test_no_colour_words_at_rate_zero():
    words = set(COLOUR_NAMES)

    def captions(rate: float) -> list[str]:
        cfg = tiny(caption=CaptionConfig(colour_word_rate=rate, background_word_rate=0.5))
        return [render_record(cfg, build_record(cfg, "train", i))[1]["caption"] for i in range(80)]

    assert all(not words & set(re.findall(r"[a-z]+", c)) for c in captions(0.0))
    assert sum(bool(words & set(re.findall(r"[a-z]+", c))) for c in captions(1.0)) > 40


def test_hard_negatives_differ_in_exactly_one_noun():
    cfg = tiny(hard_negative_rate=0.5)
    twins = 0
    for i in range(1, 70):
        _, _, meta = render_sample(cfg, "train", i)
        if meta["hard_negative_of"] is None:
            continue
        twins += 1
        prev_img, _, prev = render_sample(cfg, "train", int(meta["hard_negative_of"]))
        assert int(meta["hard_negative_of"]) == i - 1
        a, b = prev["caption"].split(), meta["caption"].split()
        assert len(a) == len(b)
        diffs = [(x, y) for x, y in zip(a, b) if x != y]
        nouns = [(x, y) for x, y in diffs if class_words(x) and class_words(y)]
        assert len(nouns) == 1 and class_words(nouns[0][0]) != class_words(nouns[0][1]), diffs
        assert all(set(d) == {"a", "an"} for d in diffs if d not in nouns), diffs
        assert sum(x != y for x, y in zip(prev["nouns"], meta["nouns"])) == 1
        changed = [k for k, (o, p) in enumerate(zip(prev["objects"], meta["objects"])) if o["class"] != p["class"]]
        assert len(changed) == 1 and prev["background"] == meta["background"]
        for o, p in zip(prev["objects"], meta["objects"]):
            assert (o["colour"], o["center"], o["rotation"], o["texture"]) == \
                (p["colour"], p["center"], p["rotation"], p["texture"])
    assert twins >= 10


# ------------------------------------------------------------------------------------------- pixels
def test_mask_aligns_with_object_pixels():
    cfg = tiny(object_texture_rate=0.0, background_clutter=0.5)
    checked = 0
    for i in range(40):
        record = build_record(cfg, "eval", i)
        rendered, meta = render_record(cfg, record)
        lut = np.zeros(256, np.uint8)
        for k, obj in enumerate(record.scene.objects):
            lut[k + 1] = cfg.classes.index(obj.cls) + 1
            pixels = rendered.image[rendered.instance_mask == k + 1].astype(int)
            close = np.abs(pixels - np.array(obj.rgb)).max(axis=1) <= 40
            assert close.mean() >= 0.85, (i, obj.cls, close.mean())
            checked += 1
        assert np.array_equal(rendered.class_mask, lut[rendered.instance_mask])
        if record.scene.background.kind == "plain":  # background pixels keep the background colour
            bg = rendered.image[rendered.class_mask == 0].astype(int)
            assert (np.abs(bg - np.array(record.scene.background.colours[0])).max(axis=1) <= 2).mean() >= 0.9
    assert checked > 40


def test_visible_fraction_respects_max_occlusion():
    cfg = tiny(max_occlusion=0.2, objects_per_image=[3, 4], object_size=[0.4, 0.55])
    occluded = 0
    for i in range(30):
        record = build_record(cfg, "train", i)
        rendered, meta = render_record(cfg, record)
        masks = [object_mask(o, cfg.image_size) for o in record.scene.objects]
        for k, mask in enumerate(masks):
            above = np.zeros_like(mask)
            for m in masks[k + 1:]:
                above |= m
            visible = 1 - (mask & above).sum() / mask.sum()
            assert visible >= 0.8 - 1e-9
            assert meta["objects"][k]["visible_fraction"] >= 0.8 - 1e-4
            assert (rendered.instance_mask == k + 1).sum() == (mask & ~above).sum()
            occluded += visible < 1
    assert occluded >= 10, "the check is vacuous if nothing is occluded"


def test_colour_and_area_do_not_reveal_the_class():
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cfg = WorldConfig()
    colour, area, label = [], [], []
    i = 0
    while len(label) < 400:
        record = build_record(cfg, "train", i)
        rendered, _ = render_record(cfg, record)
        for k, obj in enumerate(record.scene.objects):
            mine = rendered.instance_mask == k + 1
            colour.append(rendered.image[mine].mean(axis=0))
            area.append([mine.sum(), rendered.full_pixels[k]])
            label.append(cfg.classes.index(obj.cls))
        i += 1
    chance = 1 / len(cfg.classes)
    for name, features in (("colour", np.array(colour)), ("area", np.array(area, float))):
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        acc = cross_val_score(clf, features, np.array(label), cv=4).mean()
        assert acc < chance + 0.1, f"{name} predicts the class with accuracy {acc:.3f}"


# ------------------------------------------------------------------------------------------- files
def test_voc_layout(world):
    cfg, out, card = world
    for split in ("val", "eval"):
        root = out / split
        assert (root / "class_names.txt").read_text().splitlines() == ["background", *cfg.classes]
        ids = (root / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
        assert ids == [f"{i:09d}" for i in range(10)]
        notes = [json.loads(line) for line in (root / "annotations.jsonl").read_text().splitlines()]
        assert [n["key"] for n in notes] == ids
        for key, note in zip(ids, notes):
            with Image.open(root / "SegmentationClass" / f"{key}.png") as png:
                assert png.mode == "P"
                assert png.getpalette()[:3 * 11] == VOC_PALETTE[:11].reshape(-1).tolist()
            with Image.open(root / "JPEGImages" / f"{key}.jpg") as jpg:
                assert jpg.mode == "RGB" and jpg.size == (cfg.image_size, cfg.image_size)
            ids_in_mask = set(np.unique(read_mask(root / "SegmentationClass" / f"{key}.png")).tolist()) - {0}
            assert ids_in_mask == {cfg.classes.index(o["class"]) + 1 for o in note["objects"]}
        assert card["splits"][split]["samples"] == 10


def test_train_shards(world):
    cfg, out, card = world
    shards = sorted((out / "train").glob("shard-*.tar"))
    assert [s.name for s in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert [d["sha256"] for d in card["splits"]["train"]["shards"]] != []
    keys = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                assert (m.mtime, m.uid, m.gid, m.mode) == (0, 0, 0, 0o644)
                key, ext = m.name.split(".")
                assert re.fullmatch(r"\d{9}", key) and ext in ("png", "txt", "json")
                keys.append(key)
                if ext == "json":
                    meta = json.loads(tar.extractfile(m).read())
                    assert {"key", "caption", "nouns", "objects", "background", "hard_negative_of"} <= set(meta)
    assert sorted(set(keys)) == [f"{i:09d}" for i in range(cfg.num_train)] and len(keys) == 3 * cfg.num_train
    assert card["splits"]["train"]["hard_negatives"] > 0


def test_webdataset_reads_shards(world):
    wds = pytest.importorskip("webdataset")
    _, out, _ = world
    url = str(out / "train" / "shard-000000.tar")
    sample = next(iter(wds.WebDataset(url, shardshuffle=False).decode("pil")))
    assert sample["png"].mode == "RGB" and isinstance(sample["txt"], str) and "nouns" in sample["json"]


def test_datacard(world):
    cfg, out, card = world
    on_disk = json.loads((out / "datacard.json").read_text())
    assert on_disk == card and "Content hash" in (out / "datacard.md").read_text()
    train = card["splits"]["train"]
    assert sum(train["class_images"].values()) >= train["samples"]
    assert card["config"]["classes"] == list(cfg.classes)


def test_palette_png_roundtrip(tmp_path):
    mask = np.array([[0, 1, 2], [255, 10, 0]], np.uint8)
    write_palette_png(tmp_path / "m.png", mask)
    assert np.array_equal(read_mask(tmp_path / "m.png"), mask)
    with Image.open(tmp_path / "m.png") as img:
        rgb_path = tmp_path / "rgb.png"
        img.convert("RGB").save(rgb_path)
    assert np.array_equal(read_mask(rgb_path), mask)
    assert VOC_PALETTE[1].tolist() == [128, 0, 0] and VOC_PALETTE[255].tolist() == [224, 224, 192]


# ------------------------------------------------------------------------------------------- config
def test_confusable_classes_are_refused():
    validate_world(WorldConfig())
    for pair in (["square", "xshape", "cross"], ["circle", "octagon"]):
        with pytest.raises(ValueError, match="indistinguishable"):
            validate_world(tiny(classes=pair))
    validate_world(tiny(classes=["cross", "xshape"], rotation_deg=0.0))  # unrotated, + and x differ
    with pytest.raises(ValueError, match="unknown shape"):
        validate_world(tiny(classes=["circle", "blob"]))


def test_schema_lists_exactly_the_implemented_shapes():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(schema["$defs"]["shape_name"]["enum"]) == set(SHAPE_NAMES)
