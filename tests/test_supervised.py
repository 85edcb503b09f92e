"""The "supervised, same budget" reference: it trains on exactly the world's train images with their masks, its loss
falls, a killed run resumes to the weights of an uninterrupted one, `evaluate --grouper supervised` writes the usual
metrics files, and the zero-shot table shows it as a labelled reference that no check counts as a baseline."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from groupvit.cli import main
from groupvit.config import load_config
from groupvit.data.world.sample import class_index
from groupvit.report.build import study_scope
from groupvit.report.checks import reproduction_checks
from groupvit.report.reference_row import REFERENCE_LABEL
from groupvit.report.tables import main_table
from groupvit.supervised.data import check_against_shards, render_train_split
from groupvit.supervised.model import load_supervised
from groupvit.supervised.train import train_supervised

VARIANT = "supervised_same_budget"
TINY = [
    "world.num_train=48", "world.num_val=2", "world.num_eval=4", "world.shard_size=16",
    "model.image.embed_dim=32", "model.image.num_heads=2", "model.image.stem_channels=[8,16]",
    "train.batch_size=8", "train.base_batch_size=8", "train.steps=8", "train.warmup_steps=1",
    "train.checkpoint_every=4", "train.log_every=1",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from groupvit.data.world.generate import generate_world

    cfg = load_config(preset="smoke", overrides=TINY)
    root = tmp_path_factory.mktemp("world") / "synthetic"
    generate_world(cfg.world, root, workers=1, progress=False)
    return cfg, root


def _train(cfg, out, **kwargs):
    return train_supervised(cfg.for_variant(VARIANT, 0), out, variant=VARIANT, progress=False, **kwargs)


def test_rendered_split_is_the_shard_images_with_their_masks(world):
    cfg, root = world
    split = render_train_split(cfg.world, progress=False)
    labels = class_index(cfg.world)
    for shard in sorted((root / "train").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for member in (m for m in tar.getmembers() if m.name.endswith(".png")):
                index = int(member.name.split(".")[0])
                image = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
                assert np.array_equal(image, split.images[index]), member.name
                meta = json.loads(tar.extractfile(member.name.replace(".png", ".json")).read())
                visible = {labels[o["class"]] for o in meta["objects"] if o["pixels"] > 0}
                assert set(np.unique(split.masks[index])) - {0} == visible, member.name
    assert check_against_shards(split, root / "train", cfg.world.shard_size) == 3
    other = load_config(preset="smoke", overrides=TINY + ["world.seed=7"])
    with pytest.raises(ValueError, match="differs from the world"):
        check_against_shards(render_train_split(other.world, progress=False), root / "train", 16)


def test_loss_falls_and_a_killed_run_resumes_to_the_same_weights(world, tmp_path):
    cfg, root = world
    whole = _train(cfg, tmp_path / "whole", train_dir=root / "train")
    losses = [json.loads(line)["loss"] for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 8 and np.mean(losses[-3:]) < losses[0]
    assert {"steps", "train_time_s", "samples_per_s", "final_loss"} <= set(whole) and whole["steps"] == 8

    killed = tmp_path / "killed"
    _train(cfg, killed, train_dir=root / "train")
    for name in ("checkpoints/step-00000008.pt", "model.pt", "summary.json"):  # as if killed after step 4's save
        (killed / name).unlink()
    resumed = _train(cfg, killed, train_dir=root / "train")
    assert resumed["resumed_from"].endswith("step-00000004.pt")
    a, b = load_supervised(tmp_path / "whole" / "model.pt"), load_supervised(killed / "model.pt")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == 8


def test_evaluate_with_the_supervised_grouper_writes_the_metrics_files(world, tmp_path, capsys):
    cfg, root = world
    run = tmp_path / "run"
    _train(cfg, run, train_dir=root / "train")
    out = tmp_path / "metrics" / VARIANT / "seed0" / "synthetic.json"
    code = main(["evaluate", "--preset", "smoke", "--variant", VARIANT, "--grouper", "supervised",
                 "--checkpoint", str(run / "model.pt"), "--root", str(root / "eval"), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    record = json.loads(out.read_text())
    assert record["model"] == VARIANT and record["grouper"] == "supervised" and record["oracle_mIoU"] is None
    assert 0.0 <= record["mIoU"] <= 1.0 and record["mIoU_foreground"] is not None
    assert set(record["per_class_IoU"]) == {"background", *cfg.world.classes}
    assert (out.parent / "synthetic_per_class.csv").read_text().count(VARIANT) == 1 + len(cfg.world.classes)
    # the same file under the GroupViT readout: an error that names its format and the grouper that scores it
    capsys.readouterr()
    code = main(["evaluate", "--preset", "smoke", "--variant", VARIANT, "--grouper", "groupvit",
                 "--checkpoint", str(run / "model.pt"), "--root", str(root / "eval"), "--out", str(tmp_path / "g.json")])
    err = capsys.readouterr().err
    assert code != 0 and "'groupvit-supervised' checkpoint" in err and "--grouper supervised" in err, err
    assert not (tmp_path / "g.json").exists()


def test_zero_shot_table_shows_the_reference_last_and_no_check_counts_it():
    cfg = load_config(preset="default")
    assert VARIANT in cfg.study.variants and VARIANT in study_scope(cfg)[1]
    rows = [{"model": m, "variant": v, "grouper": g, "dataset": "synthetic", "seed": 0, "mIoU": miou,
             "mIoU_foreground": miou - 5, "oracle_mIoU": oracle, "floor_mIoU": 10.0, "mIoU_ci95_low": miou - 1,
             "mIoU_ci95_high": miou + 1}
            for m, v, g, miou, oracle in [(VARIANT, VARIANT, "supervised", 82.0, float("nan")),
                                          ("groupvit_2stage", "groupvit_2stage", "groupvit", 30.0, 60.0),
                                          ("vit_baselines_kmeans", "vit_baselines", "kmeans", 20.0, 40.0)]]
    metrics = pd.DataFrame(rows)
    table = main_table(cfg, metrics)
    last = table.frame.iloc[-1]
    assert (last["model"], last["mIoU"], last["mIoU (objects only)"]) == (REFERENCE_LABEL, "82.0", "77.0")
    assert last["mIoU (oracle group labels)"] == "-" and "not a baseline" in table.note
    checks = {c.claim: c for c in reproduction_checks(cfg, metrics, "synthetic")}
    beats = checks["GroupViT beats every non-parametric grouping of a ViT (vs the best one)"]
    assert "kmeans" in beats.ours and VARIANT not in beats.ours


def test_train_supervised_refuses_a_variant_of_another_family(capsys):
    assert main(["train-supervised", "--preset", "smoke", "--variant", "vit_baselines", "--out", "/nonexistent"]) == 2
    assert "family 'vit'" in capsys.readouterr().err
