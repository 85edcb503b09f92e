"""`groupvit segment` on images of any size: the checkpoint's own input protocol, the mask / JSON outputs, and
what happens to bad inputs.

A tiny trained checkpoint (it carries its config) checks the protocol end to end; fake models whose answer is
known (a constant one, and the colour model of test_eval_segmenter) check windows, outputs and refusals.
"""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from test_eval_segmenter import FakeGroupViT, scene
from torch import nn

from groupvit.cli import main
from groupvit.config import load_config
from groupvit.evaluation.config import EvalConfig
from groupvit.evaluation.palette import class_palette

SHAPES = ["circle", "triangle", "star", "cross", "ring", "heart"]
TINY = [
    "world.num_train=64", "world.num_val=2", "world.num_eval=4", "world.shard_size=32",
    "model.image.image_size=64", "model.image.embed_dim=32", "model.image.num_heads=2", "model.image.depths=[1,1,1]",
    "model.image.num_group_tokens=[8,4,0]", "model.image.num_output_groups=[8,4]", "model.image.stem_channels=[8,16]",
    "model.text.width=32", "model.proj_dim=32", "model.proj_hidden=64",
    "train.batch_size=8", "train.steps=4", "train.warmup_steps=1", "train.checkpoint_every=4", "train.log_every=1",
    "data.num_workers=0", "data.shuffle_buffer=16",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 64-px GroupViT trained for a few steps on a tiny world, saved as model.pt with its config."""
    from groupvit.data.world.generate import generate_world
    from groupvit.train.runner import run_training

    cfg = load_config(overrides=TINY, preset="smoke")
    root = tmp_path_factory.mktemp("world") / "synthetic"
    generate_world(cfg.world, root, workers=1, progress=False)
    run = tmp_path_factory.mktemp("run")
    run_training(cfg, "groupvit_2stage", 0, run, data_dir=root)
    return cfg.for_variant("groupvit_2stage"), root, run / "model.pt"


def segment(capsys, *argv) -> tuple[int, str, str]:
    code = main(["segment", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def read_mask(path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "P"
        return np.asarray(im).astype(np.int64)


# ------------------------------------------------------------------------------------------- the model's protocol
def test_upsampled_image_is_segmented_like_the_training_size_image(trained, tmp_path, capsys):
    """A 64-px eval image upsampled 4x is brought back to the 64 px the model was trained and evaluated at, so its
    mask agrees with the 64-px image's own prediction (the one `groupvit evaluate` makes)."""
    from groupvit.evaluation.segmenter import ZeroShotSegmenter
    from groupvit.model import load_model

    cfg, root, ckpt = trained
    small = np.asarray(Image.open(sorted((root / "eval" / "JPEGImages").iterdir())[0]).convert("RGB"))
    assert small.shape == (64, 64, 3)
    big = tmp_path / "photo.png"
    Image.fromarray(small).resize((256, 256), Image.BILINEAR).save(big)
    # no background phrases: every segment takes its best class, so the prediction has several labels to agree on
    ev = EvalConfig(**{**cfg.eval.__dict__, "background_prompts": []})
    reference = ZeroShotSegmenter(load_model(ckpt), SHAPES, ev, mean=cfg.data.augment.mean,
                                  std=cfg.data.augment.std).predict([small])[0]
    assert len(np.unique(reference)) >= 2, "the reference prediction is one label: the comparison would be vacuous"

    code, out, _ = segment(capsys, big, "--checkpoint", ckpt, "--classes", ",".join(SHAPES), "--background", "none",
                           "--out", tmp_path / "out")
    assert code == 0
    assert "short side 64 px" in out and "64-px windows every 32 px" in out and "checkpoint's own config" in out
    mask = read_mask(tmp_path / "out" / "photo_mask.png")
    assert mask.shape == (256, 256)
    agreement = float((mask == np.kron(reference, np.ones((4, 4), np.int64))).mean())
    assert agreement >= 0.9, f"pixel accuracy against the 64-px prediction: {agreement:.3f}"
    record = json.loads((tmp_path / "out" / "photo_segment.json").read_text())
    assert record["protocol"]["resized"] == {"height": 64, "width": 64} and record["protocol"]["windows"] == [
        [0, 64, 0, 64]]


def test_protocol_geometry_from_each_source():
    """Our embedded recipe (keep size, whole image) -> its 64-px training size with 64/32 windows; the paper's
    defaults (official / HF weights) -> short side 448, 448/224 windows; flags override."""
    from groupvit.evaluation.input_protocol import resolve_geometry

    embedded = EvalConfig(resize_short=0, mode="whole", window=64, stride=32)
    assert resolve_geometry(embedded, 64).__dict__ == {"short": 64, "long_max": 2048, "window": 64, "stride": 32}
    assert resolve_geometry(EvalConfig(), 224).__dict__ == {"short": 448, "long_max": 2048, "window": 448,
                                                           "stride": 224}
    assert resolve_geometry(EvalConfig(), 224, size=0, window=0).window == 0
    assert resolve_geometry(embedded, 64, size=96, window=80).__dict__ == {"short": 96, "long_max": 2048,
                                                                          "window": 80, "stride": 40}
    with pytest.raises(ValueError, match="--stride 90 is larger than --window 64"):
        resolve_geometry(embedded, 64, window=64, stride=90)


# ------------------------------------------------------------------------------------------- windows
class ConstantGroupViT(nn.Module):
    """Every window is one segment whose embedding is 'dog': a right tiling gives 'dog' at every pixel."""

    patch_size = 8

    def __init__(self) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(100.0)))

    def tokenizer(self, texts: list[str]) -> torch.Tensor:
        return torch.tensor([[1 if "cat" in t else 2 if "dog" in t else 3] for t in texts])

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.one_hot(tokens[:, 0] - 1, 3).float()

    def encode_image_groups(self, image: torch.Tensor):
        b, h, w = image.shape[0], image.shape[-2] // 8, image.shape[-1] // 8
        owner = torch.zeros(b, 2, h, w)
        owner[:, 0] = 1.0
        dog = torch.tensor([0.0, 1.0, 0.0])
        return SimpleNamespace(image_embed=dog.expand(b, 3), group_embeds=torch.stack([dog, dog]).expand(b, 2, 3),
                               pixel_to_group=owner, stage_assignments=[owner])


def fake_checkpoint(tmp_path, monkeypatch, model: nn.Module):
    """A file that is not our format (so the paper's protocol applies), loaded as `model`."""
    import groupvit.model

    path = tmp_path / "official.pth"
    torch.save({"unrelated": torch.zeros(1)}, path)
    monkeypatch.setattr(groupvit.model, "load_model", lambda *a, **k: model)
    return path


def test_image_longer_than_the_window_is_tiled_without_seams(tmp_path, monkeypatch, capsys):
    ckpt = fake_checkpoint(tmp_path, monkeypatch, ConstantGroupViT())
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 150, 3), dtype=np.uint8)).save(tmp_path / "long.png")

    code, out, _ = segment(capsys, tmp_path / "long.png", "--checkpoint", ckpt, "--classes", "cat,dog",
                           "--out", tmp_path / "paper")
    assert code == 0 and "short side 448 px" in out and "448-px windows every 224 px" in out and "paper" in out
    record = json.loads((tmp_path / "paper" / "long_segment.json").read_text())
    assert record["protocol"]["resized"] == {"height": 448, "width": 1680}
    windows = record["protocol"]["windows"]
    assert len(windows) == 7 and all(x2 - x1 == 448 for _, _, x1, x2 in windows) and windows[-1][3] == 1680
    mask = read_mask(tmp_path / "paper" / "long_mask.png")
    assert mask.shape == (40, 150) and (mask == 2).all()

    # the user's own windows, with a stride that does not divide the length
    code, _, _ = segment(capsys, tmp_path / "long.png", "--checkpoint", ckpt, "--classes", "cat,dog", "--size", "64",
                         "--window", "64", "--stride", "48", "--out", tmp_path / "own")
    record = json.loads((tmp_path / "own" / "long_segment.json").read_text())
    assert code == 0 and record["protocol"]["resized"] == {"height": 64, "width": 240}
    assert [w[2:] for w in record["protocol"]["windows"]] == [[0, 64], [48, 112], [96, 160], [144, 208], [176, 240]]
    assert (read_mask(tmp_path / "own" / "long_mask.png") == 2).all()


# ------------------------------------------------------------------------------------------- outputs
def test_mask_json_and_overlay_agree(tmp_path, monkeypatch, capsys):
    """Red stripe -> cat, blue stripe -> dog, grey -> background (the colour model), at 4x the scene's size."""
    ckpt = fake_checkpoint(tmp_path, monkeypatch, FakeGroupViT())
    img, lab = scene()
    Image.fromarray(img).resize((img.shape[1] * 4, img.shape[0] * 4), Image.NEAREST).save(tmp_path / "stripes.png")
    expected = np.kron(lab, np.ones((4, 4), np.int64))

    code, out, _ = segment(capsys, tmp_path / "stripes.png", "--checkpoint", ckpt, "--classes", "cat,dog",
                           "--size", "32", "--out", tmp_path / "out")
    assert code == 0 and "stripes.png: " in out
    mask_path = tmp_path / "out" / "stripes_mask.png"
    mask = read_mask(mask_path)
    assert mask.shape == expected.shape and (mask == expected).mean() >= 0.98
    with Image.open(mask_path) as im:  # the palette is the overlay's class colours
        palette = np.asarray(im.getpalette()[: 3 * 3], np.uint8).reshape(3, 3)
    np.testing.assert_array_equal(palette, class_palette(3))

    record = json.loads((tmp_path / "out" / "stripes_segment.json").read_text())
    assert record["labels"] == ["background", "cat", "dog"] and record["size"] == {"height": 128, "width": 192}
    values, counts = np.unique(mask, return_counts=True)
    assert [(c["label"], c["name"]) for c in record["classes"]] == [(0, "background"), (1, "cat"), (2, "dog")]
    assert [c["pixel_fraction"] for c in record["classes"]] == pytest.approx(list(counts / mask.size), abs=1e-6)
    assert list(values) == [0, 1, 2]
    named = {s["name"] for s in record["groups"]["segments"]}
    assert named == {"background", "cat", "dog"}
    assert all(set(s["scores"]) == {"cat", "dog"} for s in record["groups"]["segments"])
    assert sum(s["pixel_fraction"] for s in record["groups"]["segments"]) == pytest.approx(1.0, abs=1e-5)
    overlay = tmp_path / "out" / record["overlay"]
    assert overlay.name == "stripes_segment.png" and overlay.stat().st_size > 1000


def test_classes_from_a_file_and_background_phrases(tmp_path, monkeypatch, capsys):
    ckpt = fake_checkpoint(tmp_path, monkeypatch, FakeGroupViT())
    img, _ = scene()
    Image.fromarray(img).save(tmp_path / "a.png")
    (tmp_path / "classes.txt").write_text("# what to look for\ncat\n\n  dog  \n")
    code, out, _ = segment(capsys, tmp_path / "a.png", "--checkpoint", ckpt, "--classes", tmp_path / "classes.txt",
                           "--background", "grey wall, sky", "--out", tmp_path / "out")
    record = json.loads((tmp_path / "out" / "a_segment.json").read_text())
    assert code == 0 and "background phrases: grey wall, sky" in out
    assert record["protocol"]["prompt_names"] == ["cat", "dog"]
    assert record["protocol"]["background_prompts"] == ["grey wall", "sky"]


# ------------------------------------------------------------------------------------------- bad input
def test_bad_images_are_converted_or_refused_and_the_rest_still_run(tmp_path, monkeypatch, capsys):
    from groupvit.evaluation.user_inputs import ImageRefused, read_user_image

    ckpt = fake_checkpoint(tmp_path, monkeypatch, FakeGroupViT())
    img, lab = scene()
    Image.fromarray(img).save(tmp_path / "good.png")
    (tmp_path / "notes.png").write_text("not an image")
    Image.fromarray(img).convert("L").save(tmp_path / "grey.png")
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    rgba[:, :8, 3] = 0  # transparent left stripe
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    deep = (np.asarray(Image.fromarray(img).convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    Image.fromarray(img[:4, :4]).save(tmp_path / "tiny.png")
    inputs = ["good.png", "notes.png", "missing.png", "grey.png", "alpha.png", "deep.png", "tiny.png"]

    code, out, err = segment(capsys, *[tmp_path / n for n in inputs], "--checkpoint", ckpt, "--classes", "cat,dog",
                             "--size", "0", "--out", tmp_path / "out")
    assert code == 1
    assert "notes.png: not an image file" in err and "missing.png: no such file" in err
    assert "tiny.png: is 4x4 px, smaller than one 8-px patch" in err and "3 of 7 images refused" in err
    written = {p.name for p in (tmp_path / "out").iterdir()}
    for stem in ("good", "grey", "alpha", "deep"):
        assert {f"{stem}_segment.png", f"{stem}_mask.png", f"{stem}_segment.json"} <= written
    assert not any(n.startswith(("notes", "missing", "tiny")) for n in written)
    np.testing.assert_array_equal(read_mask(tmp_path / "out" / "good_mask.png"), lab)

    conversions = {s: json.loads((tmp_path / "out" / f"{s}_segment.json").read_text())["input"]["conversions"]
                   for s in ("grey", "alpha", "deep")}
    assert conversions == {"grey": ["grey repeated to RGB"], "alpha": ["RGBA with transparency composited on white"],
                           "deep": ["I;16 grey scaled from 0..65535 to 8 bits"]}
    # 16-bit samples are scaled, not clipped to white; transparent pixels show the white page
    np.testing.assert_array_equal(read_user_image(tmp_path / "deep.png").rgb,
                                  read_user_image(tmp_path / "grey.png").rgb)
    assert (read_user_image(tmp_path / "alpha.png").rgb[:, :8] == 255).all()
    with pytest.raises(ImageRefused, match="no such file"):
        read_user_image(tmp_path / "missing.png")


@pytest.mark.parametrize("classes, extra, message", [
    (" , ", [], "--classes ' , ': no class names"),
    ("cat,dog,Cat", [], "['cat'] given more than once"),
    ("cat,background", [], "'background' is implicit"),
    ("cat,dog", ["--background", "dog,sky"], "['dog'] also in --background"),
    ("cat", ["--window", "64", "--stride", "90"], "--stride 90 is larger than --window 64"),
    ("missing_classes.txt", [], "missing_classes.txt: no such file"),
])
def test_bad_class_lists_and_flags_are_refused_before_any_work(tmp_path, capsys, classes, extra, message):
    Image.fromarray(scene()[0]).save(tmp_path / "a.png")
    code, _, err = segment(capsys, tmp_path / "a.png", "--checkpoint", tmp_path / "never_read.pt", "--classes",
                           classes, *extra, "--out", tmp_path / "out")
    assert code == 2 and message in err
    assert not (tmp_path / "out").exists()
