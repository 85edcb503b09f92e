"""The recipe's pure parts: lr schedule, lr scaling, weight-decay groups, launch environment, batch layout."""
from __future__ import annotations

import math

import pytest
import torch

from groupvit.dataclass_io import ConfigError
from groupvit.train.config import TrainConfig
from groupvit.train.distributed import WorldInfo, world_info_from_env
from groupvit.train.optim import build_optimizer, param_groups
from groupvit.train.runner import BatchLayout, total_steps_for
from groupvit.train.schedule import WarmupCosine, resolve_warmup_steps, scale_lr
from helpers.toy import ToyCLIP


def test_lr_is_scaled_linearly_with_the_global_batch():
    assert scale_lr(1.6e-3, 4096, 4096) == pytest.approx(1.6e-3)
    assert scale_lr(1.6e-3, 4096, 256) == pytest.approx(1e-4)


def test_schedule_official_timm_semantics_at_chosen_steps():
    s = WarmupCosine(peak_lr=1.0, total_steps=100, warmup_steps=10, warmup_lr=0.1, min_lr=0.01)
    assert s(0) == pytest.approx(0.1)  # warmup start
    assert s(5) == pytest.approx(0.55)  # half way up
    # first step after warmup: the cosine is measured from step 0, so slightly below the peak (timm, official)
    assert s(10) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.1)))
    assert s(50) == pytest.approx(0.01 + 0.99 * 0.5)  # middle of the cosine = mean of peak and min
    assert s(100) == pytest.approx(0.01)  # end
    assert s(99) > s(100) and s(99) == pytest.approx(0.01, abs=1e-3)
    assert all(s(i) >= s(i + 1) for i in range(10, 100))


def test_schedule_with_warmup_prefix_reaches_the_peak():
    s = WarmupCosine(peak_lr=2.0, total_steps=110, warmup_steps=10, warmup_lr=0.0, min_lr=0.0, warmup_prefix=True)
    assert s(0) == 0.0
    assert s(9) == pytest.approx(1.8)
    assert s(10) == pytest.approx(2.0)  # end of warmup = peak
    assert s(60) == pytest.approx(1.0)  # cosine middle
    assert s(110) == pytest.approx(0.0)


def test_schedule_rejects_bad_lengths_and_warmup_epochs_convert():
    with pytest.raises(ValueError):
        WarmupCosine(1.0, total_steps=0)
    with pytest.raises(ValueError):
        WarmupCosine(1.0, total_steps=5, warmup_steps=6)
    assert resolve_warmup_steps(0, 2.0, steps_per_epoch=705.9, total_steps=21000) == 1412
    assert resolve_warmup_steps(7, 2.0, steps_per_epoch=705.9, total_steps=21000) == 7
    assert resolve_warmup_steps(0, 2.0, steps_per_epoch=100, total_steps=50) == 50


def test_total_steps_from_epochs_and_data_size():
    assert total_steps_for(0, 30, 12_000_000, 4096) == (87890, 12_000_000 / 4096)
    assert total_steps_for(500, 30, 100, 64)[0] == 500
    with pytest.raises(ConfigError, match="less than one step"):
        total_steps_for(0, 1, 10, 64)


def _groups(keywords):
    model = ToyCLIP()
    decay, no_decay = param_groups(model, 0.05, keywords)
    return set(decay["names"]), set(no_decay["names"]), decay["weight_decay"], no_decay["weight_decay"]


def test_weight_decay_exemptions():
    decay, no_decay, wd, zero = _groups(TrainConfig().no_weight_decay_keywords)
    assert (wd, zero) == (0.05, 0.0)
    assert decay == {"image_proj.weight", "token_embedding.weight", "text_proj.weight"}
    assert no_decay == {"image_proj.bias", "norm.weight", "norm.bias", "pos_embed", "group_token", "logit_scale"}


def test_official_rule_only_exempts_1d_and_biases():
    decay, no_decay, _, _ = _groups([])
    assert {"pos_embed", "group_token", "logit_scale"} <= decay  # the official code decays these (0-D scale too)
    assert no_decay == {"image_proj.bias", "norm.weight", "norm.bias"}


def test_frozen_parameters_are_left_out_and_optimizer_uses_both_groups():
    model = ToyCLIP()
    model.token_embedding.weight.requires_grad_(False)
    opt = build_optimizer(model, lr=1e-3, weight_decay=0.05, betas=[0.9, 0.98], no_decay_keywords=["pos_embed"])
    names = [n for g in opt.param_groups for n in g["names"]]
    assert "token_embedding.weight" not in names and len(names) == len(set(names)) == 8
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert opt.param_groups[0]["betas"] == (0.9, 0.98)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, WorldInfo(0, 0, 1)),
        ({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "8"}, WorldInfo(3, 1, 8)),
        ({"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "16"}, WorldInfo(5, 1, 16)),
        ({"RANK": "1", "WORLD_SIZE": "2", "SLURM_PROCID": "7", "SLURM_NTASKS": "9"}, WorldInfo(1, 0, 2)),
    ],
)
def test_world_info_from_env(env, expected):
    assert world_info_from_env(env) == expected


def test_batch_layout_splits_the_global_batch():
    layout = BatchLayout.of(4096, 16, 2)
    assert layout.per_rank_batch == 128
    with pytest.raises(ConfigError, match="divisible"):
        BatchLayout.of(100, 3, 1)


def test_precision_contexts_do_not_branch_the_loop():
    from contextlib import nullcontext

    from groupvit.train.precision import autocast_context, grad_scaler

    cpu = torch.device("cpu")
    assert autocast_context(cpu, "bf16") is nullcontext  # a CPU trains in fp32
    with autocast_context(cpu, "bf16")():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert not grad_scaler(cpu, "bf16").is_enabled()
    with pytest.raises(ValueError, match="precision"):
        autocast_context(cpu, "fp8")
