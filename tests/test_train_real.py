"""The engine with the real pieces: GroupViT (tiny), GroupViTLoss and the shard loader over a generated world.

Bit-exact resume here covers what the toy tests cannot: Gumbel noise drawn inside the grouping blocks, the
loader's augmentation randomness and its start_step, and the model library's checkpoint format for model.pt.
"""
from __future__ import annotations

import json

import pytest
import torch

from groupvit.config import load_config
from groupvit.train.data_source import TrainData, train_data_for
from groupvit.train.runner import run_training, train

TINY = [
    "world.num_train=64", "world.num_val=2", "world.num_eval=2", "world.shard_size=32",
    "model.image.image_size=32", "model.image.embed_dim=32", "model.image.num_heads=2", "model.image.depths=[1,1,1]",
    "model.image.num_group_tokens=[4,2,0]", "model.image.num_output_groups=[4,2]", "model.image.stem_channels=[8,16]",
    "model.text.width=32", "model.text.layers=1", "model.text.heads=2", "model.text.context_length=16",
    "model.proj_dim=32", "model.proj_hidden=64",
    "train.batch_size=8", "train.steps=5", "train.warmup_steps=2", "train.checkpoint_every=2", "train.log_every=1",
    "data.num_workers=0", "data.shuffle_buffer=16",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from groupvit.data.world.generate import generate_world

    cfg = load_config(overrides=TINY, preset="smoke")
    root = tmp_path_factory.mktemp("world") / "synthetic"
    card = generate_world(cfg.world, root, workers=1, progress=False)
    return cfg, root, card


class Killed(Exception):
    pass


def _crash_after(data: TrainData, batches: int) -> TrainData:
    def make_batches(**kwargs):
        for i, batch in enumerate(data.make_batches(**kwargs)):
            if i == batches:
                raise Killed
            yield batch

    return TrainData(data.num_samples, data.content_hash, make_batches, data.counters, data.shards)


def test_real_run_writes_loadable_model_and_summary(world, tmp_path):
    from groupvit.model import load_model

    cfg, root, card = world
    summary = run_training(cfg, "groupvit_2stage", 3, tmp_path, data_dir=root)
    assert summary["steps"] == 5 and summary["seed"] == 3 and summary["samples_seen"] == 40
    assert summary["data_content_hash"] == card["content_hash"]
    assert summary["config"]["train"]["seed"] == 3 and summary["variant"] == "groupvit_2stage"
    assert 0 <= summary["data_wait_frac"] < 1 and summary["samples_per_s"] > 0
    # every loss term the recipe switches on is logged (the smoke preset inherits the default's group-usage and
    # assignment-logit spread terms)
    assert set(summary["final_losses"]) == {"loss", "contrastive", "multi_label", "group_usage", "assign_logit_spread"}
    model = load_model(tmp_path / "model.pt")
    assert model.cfg.image.embed_dim == 32
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5]
    assert {"lr", "loss", "multi_label", "logit_scale", "multi_label_logit_scale", "samples_per_s",
            "data_wait_frac", "data_samples"} <= set(records[-1])


def test_real_resume_is_bit_identical(world, tmp_path):
    cfg, root, _ = world
    resolved = cfg.for_variant("groupvit_2stage", 0)
    train(resolved, tmp_path / "ref", data_dir=root)
    with pytest.raises(Killed):  # killed in step 4, after the step-2 checkpoint
        train(resolved, tmp_path / "run", data=_crash_after(train_data_for(resolved, root), 3))
    summary = train(resolved, tmp_path / "run", data_dir=root)
    assert summary["resumed_from"].endswith("step-00000002.pt") and summary["steps"] == 5
    a = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after resume"


def test_model_file_does_not_change_when_the_study_grows(world, tmp_path):
    """model.pt stores the run's own settings, not the study's plan: another variant or seed list in the study leaves
    its bytes (and so the checkpoint sha256 the metrics record) the same."""
    import dataclasses
    import hashlib

    from groupvit.config.experiment import VariantConfig

    cfg, root, _ = world
    grown = dataclasses.replace(
        cfg, variants={**cfg.variants, "lower_lr": VariantConfig(overrides={"train": {"base_lr": 1e-4}})},
        study=dataclasses.replace(cfg.study, seeds=[0, 1, 2, 3]),
    )
    run_training(cfg, "groupvit_2stage", 0, tmp_path / "a", data_dir=root)
    run_training(grown, "groupvit_2stage", 0, tmp_path / "b", data_dir=root)
    a, b = (hashlib.sha256((tmp_path / run / "model.pt").read_bytes()).hexdigest() for run in "ab")
    assert a == b
    stored = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["meta"]["config"]
    assert "variants" not in stored and "study" not in stored and stored["train"]["seed"] == 0
