"""`groupvit classify`, `classification-table`, `segment` and `groups` as a user runs them: separate processes on
a tiny smoke-preset world and an untrained smoke-preset model (the numbers mean nothing; the files and messages do)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from groupvit.config import load_config

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "config.yaml"
GROUPVIT = Path(sys.executable).parent / "groupvit"

pytestmark = pytest.mark.slow  # about a dozen processes that each import torch


def _groupvit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(GROUPVIT), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def _ok(*args: str, cwd: Path) -> str:
    result = _groupvit(*args, cwd=cwd)
    assert result.returncode == 0, f"groupvit {' '.join(args)}:\n{result.stdout}\n{result.stderr[-3000:]}"
    return result.stdout


def _save_model(path: Path, variant: str) -> Path:
    from groupvit.model import build_model, save_checkpoint

    torch.manual_seed(0)
    return save_checkpoint(path, build_model(load_config(CONFIG, "smoke").for_variant(variant).model))


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A tiny world (16 eval images), a smoke GroupViT and a smoke ViT checkpoint, and a folder of photos."""
    root = tmp_path_factory.mktemp("cli")
    _ok("synth", "--config", str(CONFIG), "--preset", "smoke", "--set", "world.num_train=16",
        "--set", "world.shard_size=16", "--out", str(root / "world"), "--workers", "1", "--no-progress", cwd=root)
    _save_model(root / "groupvit.pt", "groupvit_2stage")
    _save_model(root / "vit.pt", "vit_baselines")
    rng = np.random.default_rng(0)
    for cls in ("red_circle", "blue_square"):  # ImageNet layout: root/<class name>/<image>
        (root / "photos" / cls).mkdir(parents=True)
        for k, size in enumerate([(48, 80), (90, 60)]):
            pixels = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "photos" / cls / f"{k}.{'png' if k else 'jpg'}")
    return root


def test_classify_scores_the_world_object_crops_and_records_them(work):
    out = work / "crops.json"
    printed = _ok("classify", "--config", str(CONFIG), "--preset", "smoke", "--variant", "groupvit_2stage",
                  "--checkpoint", str(work / "groupvit.pt"), "--root", str(work / "world" / "eval"),
                  "--out", str(out), cwd=work)
    record = json.loads(out.read_text())
    assert printed.startswith("top-1 ") and f"on {record['num_images']} images" in printed
    assert record["num_images"] >= 16  # every eval image has at least one object
    assert 0.0 <= record["top1"] <= record["top5"] <= 1.0
    from groupvit.evaluation import load_eval_dataset

    classes = load_eval_dataset("synthetic", work / "world" / "eval", split="val").foreground_prompts
    assert record["num_classes"] == len(classes)  # every foreground class is a candidate, not only those seen
    assert record["variant"] == "groupvit_2stage" and record["num_classes"] >= len(record["per_class_acc"]) > 0


def test_classify_reads_an_imagenet_layout_folder(work):
    out = work / "photos.json"
    _ok("classify", "--config", str(CONFIG), "--preset", "smoke", "--checkpoint", str(work / "vit.pt"),
        "--folder", str(work / "photos"), "--out", str(out), cwd=work)
    record = json.loads(out.read_text())
    assert record["num_images"] == 4 and record["num_classes"] == 2
    assert set(record["per_class_acc"]) == {"red circle", "blue square"}  # folder names, '_' -> ' '


def test_classify_on_a_folder_uses_the_checkpoints_own_protocol(work):
    """Without --preset/--set/--variant, a folder is classified at the resolution the checkpoint was trained and
    evaluated with (our checkpoints carry their config, as training saves it), and the command says so."""
    from groupvit.model import build_model, save_checkpoint

    cfg = load_config(CONFIG, "smoke", ["eval.cls_resize=40", "eval.cls_crop=32"])
    torch.manual_seed(0)
    path = save_checkpoint(work / "own.pt", build_model(cfg.for_variant("groupvit_2stage").model),
                           config=cfg.for_variant("groupvit_2stage").to_dict())
    printed = _ok("classify", "--checkpoint", str(path), "--folder", str(work / "photos"), cwd=work)
    assert "resize the short side to 40 px, centre crop 32 px (from the checkpoint's own config, preset smoke)" \
        in printed


def test_classify_names_a_missing_checkpoint(work):
    result = _groupvit("classify", "--config", str(CONFIG), "--preset", "smoke", "--checkpoint", "nope.pt",
                       "--folder", str(work / "photos"), cwd=work)
    assert result.returncode == 2 and "nope.pt: no such file" in result.stderr


def test_classification_table_puts_the_study_beside_the_paper(work):
    results = work / "results"
    for variant, seed, top1 in [("groupvit_2stage", 0, 0.5), ("vit_baselines", 0, 0.25),
                                ("groupvit_1stage", 0, 0.9)]:  # the last one is not in the smoke study
        path = results / "classification" / variant / f"seed{seed}" / "synthetic.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"top1": top1, "top5": 1.0, "num_images": 20, "num_classes": 10,
                                    "per_class_acc": {"circle": top1}}))
    _ok("classification-table", "--config", str(CONFIG), "--preset", "smoke", "--out", str(results), cwd=work)
    table = (results / "tables" / "zero_shot_classification.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert set(rows) == {"variant", "---", "groupvit_2stage", "vit_baselines"}
    assert "| 50.0 |" in rows["groupvit_2stage"] and rows["groupvit_2stage"].endswith("| 10.0 | 42.9 |")
    assert "| 25.0 |" in rows["vit_baselines"] and rows["vit_baselines"].endswith("| 42.4 |")


def test_segment_writes_an_overlay_per_image(work):
    images = [work / "garden.jpg", work / "street.png"]  # two sizes, neither the model's
    for path, shape in zip(images, [(50, 70, 3), (96, 40, 3)]):
        Image.fromarray(np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8)).save(path)
    out = work / "overlays"
    printed = _ok("segment", *map(str, images), "--config", str(CONFIG), "--preset", "smoke",
                  "--checkpoint", str(work / "groupvit.pt"), "--classes", "circle, square", "--out", str(out),
                  cwd=work)
    written = [Path(word) for word in printed.split() if word.endswith(".png")]
    assert written and all(p.is_file() for p in written)
    for image in images:  # at least one picture per input, named after it
        mine = [p for p in written if image.stem in p.name and p.parent.resolve() == out.resolve()]
        assert mine, (image, written)
        with Image.open(mine[0]) as im:
            assert im.format == "PNG"


def test_segment_needs_a_class_name(work):
    result = _groupvit("segment", str(next((work / "photos").rglob("*.png"))), "--config", str(CONFIG),
                       "--preset", "smoke", "--checkpoint", str(work / "groupvit.pt"), "--classes", " , ",
                       "--out", str(work / "none"), cwd=work)
    assert result.returncode == 2 and "--classes" in result.stderr


def test_groups_draws_each_stage_tokens_for_a_folder(work):
    out = work / "groups"
    printed = _ok("groups", str(work / "groupvit.pt"), str(work / "photos"), "--out", str(out), "--top-k", "3",
                  "--config", str(CONFIG), "--preset", "smoke", cwd=work)
    record = json.loads((out / "groups.json").read_text())
    model = load_config(CONFIG, "smoke").for_variant("groupvit_2stage").model.image
    grid = model.image_size // model.patch_size
    assert record["images"] == 4 and record["grid"] == [grid, grid]
    for stage, groups in enumerate(model.num_output_groups, start=1):
        tokens = [t for t in record["tokens"] if t["stage"] == stage]
        assert [t["token"] for t in tokens] == list(range(groups))
        assert sum(t["patches"] for t in tokens) == 4 * grid * grid  # every patch belongs to one group
        assert all(len(t["top"]) == min(3, t["patches"]) for t in tokens)
        names = {t["top"][0]["image"] for t in tokens if t["top"]}
        assert names <= {"blue_square/0.jpg", "blue_square/1.png", "red_circle/0.jpg", "red_circle/1.png"}
    assert "stage 1: " in printed and (out / "groups.png").stat().st_size > 5000


def test_groups_refuses_a_model_without_groups_and_an_empty_folder(work):
    (work / "empty").mkdir(exist_ok=True)
    vit = _groupvit("groups", str(work / "vit.pt"), str(work / "photos"), "--out", str(work / "g"),
                    "--config", str(CONFIG), "--preset", "smoke", cwd=work)
    assert vit.returncode == 1 and "no grouping stages" in vit.stderr
    empty = _groupvit("groups", str(work / "groupvit.pt"), str(work / "empty"), "--out", str(work / "g"),
                      "--config", str(CONFIG), "--preset", "smoke", cwd=work)
    assert empty.returncode == 1 and "holds no images" in empty.stderr
