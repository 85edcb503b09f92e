"""The main model scored a second time with the paper's official readout (soft maps, segment-token embeddings):
`groupvit evaluate --grouper official_readout` records that readout and how many groups each readout uses, and the
zero-shot table places the row under the main model only when the preset's own readout differs."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch

from groupvit.cli import main
from groupvit.config import load_config
from groupvit.evaluation.readout import official_readout_model
from groupvit.report.tables import main_table

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "config.yaml"


def test_evaluate_with_the_official_readout_records_it_and_both_readouts_group_counts(tmp_path):
    from groupvit.data.world.generate import generate_world
    from groupvit.model import build_model, save_checkpoint

    cfg = load_config(CONFIG, "smoke", ["world.num_train=4", "world.num_val=2", "world.num_eval=2",
                                        "world.shard_size=4"])
    generate_world(cfg.world, tmp_path / "world", workers=1, progress=False)
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "model.pt", build_model(cfg.for_variant("groupvit_2stage").model))
    out = tmp_path / "official.json"
    code = main(["evaluate", "--config", str(CONFIG), "--preset", "smoke", "--variant", "groupvit_2stage",
                 "--grouper", "official_readout", "--checkpoint", str(checkpoint),
                 "--root", str(tmp_path / "world" / "eval"), "--out", str(out)])
    assert code == 0
    record = json.loads(out.read_text())
    assert record["model"] == "groupvit_2stage_official_readout"
    assert (record["protocol"]["assignment"], record["protocol"]["segment_embeds"]) == ("soft", "segments")
    preset = cfg.for_variant("groupvit_2stage").eval  # the background handling stays the preset's
    assert record["protocol"]["background_prompts"] == list(preset.background_prompts)
    stats = record["readout_stats"]
    assert stats["images"] == 2 and stats["groups"] == list(cfg.model.image.num_output_groups)
    for readout in ("soft", "hard"):
        assert len(stats["groups_per_image"][readout]) == 2
        assert all(1 <= used <= groups for used, groups in zip(stats["groups_per_image"][readout], stats["groups"]))
    assert all(1 / groups <= peak <= 1 for peak, groups in zip(stats["soft_max_prob"], stats["groups"]))


def _metrics(models: dict[str, float], stats: dict | None = None) -> pd.DataFrame:
    rows = [{"model": model, "dataset": "synthetic", "seed": seed, "mIoU": miou + seed, "mIoU_foreground": miou,
             "oracle_mIoU": 30.0, "floor_mIoU": 10.0, **(stats or {})}
            for model, miou in models.items() for seed in (0, 1)]
    return pd.DataFrame(rows)


def test_the_official_row_sits_under_the_main_model_only_when_the_readouts_differ():
    default = load_config(CONFIG, "default")  # hard maps, members-only embeddings: not the official readout
    assert official_readout_model(default) == "groupvit_2stage_official_readout"
    stats = {"final_groups": 8, "final_groups_used_soft": 1.0, "final_groups_used_hard": 3.0,
             "final_soft_max_prob": 0.132}
    metrics = _metrics({"groupvit_1stage": 20.0, "groupvit_2stage": 25.0, "groupvit_2stage_no_multilabel": 9.0,
                        "groupvit_2stage_official_readout": 11.0}, stats)
    table = main_table(default, metrics)
    models = list(table.frame["model"])
    assert models[models.index("groupvit_2stage") + 1] == "groupvit_2stage, official soft readout"
    assert table.frame.set_index("model").loc["groupvit_2stage, official soft readout", "mIoU"] == "11.5 ± 0.7"
    assert "1.0 group(s) per image" in table.note and "3.0 for the hard maps" in table.note
    assert "`eval.assignment: hard`" in table.note  # what the preset's own readout is

    paper = load_config(CONFIG, "paper")  # its main readout is the official one: no duplicate row
    assert official_readout_model(paper) is None
    assert "official" not in main_table(paper, _metrics({"groupvit_2stage": 25.0})).note
