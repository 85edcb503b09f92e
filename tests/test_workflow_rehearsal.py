"""The paper path end to end through the DAG, small: `snakemake --cores all --config preset=rehearsal` from empty
folders against the loopback rehearsal server (groupvit.rehearsal): pair lists in the real formats -> shards ->
the paper's model and recipe trained for 3 steps under torchrun (2 gloo processes) -> VOC / Context / COCO-Object
downloaded from pinned archives and converted -> evaluation with the paper's protocol -> tables beside the paper's
numbers -> the report. About 2.5 minutes on 2 cores. Runs in a copy of the checkout.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from groupvit.config import load_config
from groupvit.evaluation import load_eval_dataset
from groupvit.evaluation.download.sets import reader_root
from groupvit.rehearsal import pairs_lists
from groupvit.rehearsal.server import NUM_PAIRS, PORT, RehearsalServer
from helpers.workflow import copy_checkout, run

pytestmark = pytest.mark.slow
DATASETS = ("voc", "context", "coco_object")
PAIRS = ("cc3m", "cc12m", "yfcc14m", "redcaps")


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """(checkout, server files, snakemake's output) after one full rehearsal run from empty folders."""
    root = tmp_path_factory.mktemp("rehearsal") / "repo"
    copy_checkout(root)
    try:
        server = RehearsalServer(PORT)
    except OSError as exc:
        pytest.fail(f"the rehearsal preset's URLs name 127.0.0.1:{PORT}, which is taken ({exc})")
    with server:
        pairs_lists.write_lists(root / "data" / "rehearsal" / "lists", NUM_PAIRS, server.base_url)
        output = run(["snakemake", "--cores", "all", "--config", "preset=rehearsal"], root, timeout=900)
    return root, server.files, output


def test_pairs_are_downloaded_into_shards_from_every_list_format(rehearsal):
    root, _, _ = rehearsal
    for name in PAIRS:
        folder = root / "data" / "rehearsal" / "shards" / name
        done = json.loads((folder / "_pairs" / "done.json").read_text())
        tars = sorted(folder.glob("*.tar"))
        # every 25th link is dead; the YFCC list also loses its one-word captions to the format's 2-word floor
        assert done["failed_to_download"] > 0 and done["successes"] >= (120 if name == "yfcc14m" else 190), done
        assert len(tars) >= 3 and (folder / "summary.md").exists()


def test_eval_sets_are_downloaded_verified_and_converted(rehearsal):
    root, files, _ = rehearsal
    eval_root = root / "data" / "rehearsal" / "eval"
    for name in DATASETS:
        dataset = load_eval_dataset(name, reader_root(eval_root, name))
        assert len(dataset) == 3
        for item in dataset:  # the converted masks are the ones the archives were built from
            np.testing.assert_array_equal(item.mask, files.masks[name][item.id])
        assert item.image.shape[:2] == (120, 160)  # as stored; the protocol resizes to a 448 short side


def test_the_papers_model_trains_under_torchrun_with_two_gloo_processes(rehearsal):
    root, _, output = rehearsal
    assert re.search(r"OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 --no-python groupvit train", output)
    run_dir = root / "runs" / "rehearsal" / "groupvit_2stage" / "seed0"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3 and summary["global_batch"] == 8
    assert summary["data_counters"]["data_corrupt_image"] == 0
    paper = load_config(root / "config" / "config.yaml", "paper")
    saved = torch.load(run_dir / "model.pt", weights_only=True)["meta"]["config"]
    # the paper's architecture and recipe: only batch, steps and operational settings are shrunk
    assert saved["model"] == json.loads(json.dumps(paper.to_dict()["model"]))
    assert saved["data"]["augment"] == json.loads(json.dumps(paper.to_dict()["data"]["augment"]))
    assert {k: v for k, v in saved["train"].items() if k not in (
        "batch_size", "steps", "warmup_steps", "checkpoint_every", "log_every", "processes")} == {
        k: v for k, v in json.loads(json.dumps(paper.to_dict()["train"])).items() if k not in (
            "batch_size", "steps", "warmup_steps", "checkpoint_every", "log_every", "processes")}
    log = (root / "logs" / "rehearsal" / "pretrain" / "groupvit_2stage_seed0.log").read_text()
    assert log.count('{"variant": "groupvit_2stage"') == 1, "one summary line per run, not one per process"


def test_each_dataset_is_scored_with_the_papers_protocol(rehearsal):
    root, _, _ = rehearsal
    thresholds = {"voc": 0.95, "context": 0.35, "coco_object": 0.95}
    for name in DATASETS:
        metrics = json.loads((root / "results" / "rehearsal" / "metrics" / "groupvit_2stage" / "seed0" /
                              f"{name}.json").read_text())
        protocol = metrics["protocol"]
        assert (protocol["resize_short"], protocol["mode"], protocol["window"], protocol["stride"]) == (
            448, "slide", 448, 224)
        assert protocol["bg_thresh"] == thresholds[name] and metrics["num_images"] == 3
        assert 0.0 <= metrics["mIoU"] <= 1.0


def test_tables_put_the_papers_numbers_beside_each_dataset(rehearsal):
    root, _, _ = rehearsal
    table = (root / "results" / "rehearsal" / "tables" / "zero_shot.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| groupvit_2stage |")]
    assert [row.split(" | ")[1] for row in rows] == list(DATASETS)  # in the preset's order
    header = next(line for line in table.splitlines() if line.startswith("| model |"))
    assert "paper: GroupViT (CC3M+CC12M+YFCC14M)" in header
    assert [row.rstrip(" |").split(" | ")[7] for row in rows] == ["52.3", "22.4", "24.3"]


def test_report_shows_the_three_datasets_and_deviates_from_paper_only_in_sizes(rehearsal):
    root, _, _ = rehearsal
    results = root / "results" / "rehearsal"
    html = (results / "reports" / "report.html").read_text()
    assert "Traceback" not in html and "Warning" not in html
    assert "This preset scores <code>voc</code>, <code>context</code>, <code>coco_object</code>" in html
    assert sorted(p.name for p in (results / "figures").iterdir()) == sorted(
        ["training_curves.png", "miou_bars.png", "per_class_iou.png"]
        + [f"{figure}_{name}.png" for name in ("context", "coco_object") for figure in ("miou_bars", "per_class_iou")])
    for name in DATASETS:
        assert f"<strong>{name}</strong>" in html
    # compared with the paper preset: no architecture, augmentation, loss or protocol key among the deviations
    section = html.split('id="Deviations-from-the-paper', 1)[1]
    keys = re.findall(r"<th>\d+</th>\s*<td>([\w.]+)</td>", section)
    assert keys and not [k for k in keys if k.startswith(("model.", "eval.", "data.augment", "train.loss"))], keys
    assert "train.batch_size" in keys and "data.source" not in keys


def test_a_second_run_has_nothing_to_do(rehearsal):
    root, _, _ = rehearsal
    assert "Nothing to be done" in run(["snakemake", "--cores", "all", "-n", "--config", "preset=rehearsal"], root)


def test_the_preset_pins_the_archives_the_server_builds():
    """The archives are built byte-identically, so the preset's pins hold (a Pillow or scipy update that changes
    their bytes shows here, with the command that prints the new pins)."""
    from groupvit.rehearsal.server import RehearsalFiles

    cfg = load_config(preset="rehearsal")
    assert cfg.eval_data.sha256 == RehearsalFiles().pins(), "re-pin with `python -m groupvit.rehearsal pins`"
    assert all(url.startswith(f"http://127.0.0.1:{PORT}/eval/") for url in cfg.eval_data.urls.values())
