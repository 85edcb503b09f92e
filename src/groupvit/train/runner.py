"""Wiring for one training run: config in, run directory out.

    run_training(cfg, variant, seed, out_dir)   # what `groupvit train --variant NAME --seed S --out DIR` calls
    train(resolved_cfg, out_dir, variant=...)   # the same, for a config that already has the variant applied

The run directory holds `checkpoints/step-NNNNNNNN.pt` (training state, the newest train.keep_checkpoints),
`metrics.jsonl` (every train.log_every steps), `model.pt` (final weights in the model library's format, what
evaluation loads) and `summary.json` (provenance and figures). With `resume=True` (the default) a run directory that
already holds checkpoints continues from the newest one and ends with the same weights as an uninterrupted run
(bit-identical on the CPU with the same world size): model, optimiser, grad scaler, step, per-rank RNG states and the
data position (micro-batches consumed, handed to the loader as start_step) are restored; the schedule is a function
of the step. Launch lines (single process, torchrun, SLURM) are in groupvit.train.distributed. A fresh run may start
from given weights and train only part of the model (train.init_from, train.freeze: groupvit.train.finetune).
"""
from __future__ import annotations

import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from groupvit.dataclass_io import ConfigError
from groupvit.train.checkpointing import (
    CheckpointManager, capture_rng_state, load_train_state, restore_rng_state,
)
from groupvit.train.data_source import TrainData, train_data_for
from groupvit.train.distributed import (
    DistContext, barrier, broadcast_object, cleanup_distributed, gather_to_all, init_distributed,
)
from groupvit.train.finetune import freeze_groups, init_from_weights
from groupvit.train.loop import Engine, LoopConfig, LoopState, train_loop
from groupvit.train.metrics_log import MetricsLogger, truncate_after
from groupvit.train.optim import build_optimizer
from groupvit.train.precision import autocast_context, enable_tf32, grad_scaler
from groupvit.train.recipe import training_recipe
from groupvit.train.schedule import WarmupCosine, resolve_warmup_steps, scale_lr
from groupvit.train.summary import (
    build_summary, device_description, finished_summary, run_figures, write_summary_json,
)

LOSS_WINDOW = 50  # summary: mean of the last N steps' losses


@dataclass
class ModelParts:
    """How a run builds and saves its model; the defaults use groupvit.model, tests inject stand-ins."""

    build_model: Callable[[Any], nn.Module]  # (ModelConfig) -> model with .tokenizer
    build_loss: Callable[[Any, int, int], nn.Module]  # (LossConfig, rank, world_size) -> loss module
    save_model: Callable[..., Any]  # (path, model, **meta), atomic


def default_model_parts() -> ModelParts:
    from groupvit.model import GroupViTLoss, build_model, save_checkpoint

    return ModelParts(build_model=build_model, build_loss=GroupViTLoss, save_model=save_checkpoint)


@dataclass(frozen=True)
class BatchLayout:
    """How the global batch splits over processes and accumulation micro-steps."""

    global_batch: int
    world_size: int
    grad_accum_steps: int

    @property
    def per_rank_batch(self) -> int:
        return self.global_batch // (self.world_size * self.grad_accum_steps)

    @classmethod
    def of(cls, batch_size: int, world_size: int, grad_accum_steps: int) -> "BatchLayout":
        if batch_size % (world_size * grad_accum_steps):
            raise ConfigError(
                f"train.batch_size: the global batch {batch_size} must be divisible by processes ({world_size}) x "
                f"train.grad_accum_steps ({grad_accum_steps})"
            )
        return cls(batch_size, world_size, grad_accum_steps)


def total_steps_for(steps: int, epochs: float, num_samples: int, global_batch: int) -> tuple[int, float]:
    """(total optimiser steps, steps per epoch): train.steps when > 0, else epochs x samples / global batch."""
    steps_per_epoch = num_samples / global_batch
    if steps > 0:
        return steps, steps_per_epoch
    total = int(epochs * steps_per_epoch)
    if total < 1:
        raise ConfigError(
            f"train.epochs: {epochs} epochs of {num_samples} samples at global batch {global_batch} is less than "
            "one step; set train.steps or a smaller train.batch_size"
        )
    return total, steps_per_epoch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _say(ctx: DistContext, message: str) -> None:
    if ctx.is_master:
        print(f"[train] {message}", file=sys.stderr, flush=True)


def run_training(
    cfg: Any, variant: str, seed: int, out_dir: str | Path, *, resume: bool = True, data_dir: str | Path | None = None,
    on_recipe_change: str = "error",
) -> dict:
    """Train `variant` of the experiment with `seed` into `out_dir`; returns the run summary (summary.json)."""
    resolved = cfg.for_variant(variant, seed)
    return train(resolved, out_dir, variant=variant, resume=resume, data_dir=data_dir,
                 on_recipe_change=on_recipe_change)


def recipe_changes(saved: dict | None, current: dict, defaults: dict) -> list[str]:
    """'key: old -> new' for every setting that decides what a run learns and differs between a checkpoint's config
    and the current one. A key the checkpoint predates counts as unchanged while it keeps its default value."""
    if not saved:
        return []
    old, new, base = training_recipe(saved), training_recipe(current), training_recipe(defaults)
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, base.get(key)), new.get(key, base.get(key))
        if before != after:
            changes.append(f"{key}: {before!r} -> {after!r}")
    return changes


def train(
    cfg: Any,
    out_dir: str | Path,
    *,
    variant: str = "",
    resume: bool = True,
    data_dir: str | Path | None = None,
    data: TrainData | None = None,
    parts: ModelParts | None = None,
    on_recipe_change: str = "error",
) -> dict:
    """Train a resolved ExperimentConfig into `out_dir`. `data` and `parts` override the real loader and model.

    A run directory whose checkpoints come from a different recipe (recipe_changes) is never silently resumed:
    on_recipe_change="error" refuses with the changed keys, "restart" trains from scratch in place (the workflow's
    choice: Snakemake reruns a job exactly when its recipe changed)."""
    if on_recipe_change not in ("error", "restart"):
        raise ValueError(f"on_recipe_change must be 'error' or 'restart', got {on_recipe_change!r}")
    ctx, owns_group = init_distributed(cfg.train.device)
    try:
        return _train(cfg, Path(out_dir), ctx, variant, resume, data_dir, data, parts or default_model_parts(),
                      on_recipe_change)
    finally:
        if owns_group:
            cleanup_distributed()


@dataclass(frozen=True)
class RunPlan:
    """The run's length and learning-rate schedule, from the config and the data's size."""

    layout: BatchLayout
    total_steps: int
    warmup_steps: int
    peak_lr: float
    schedule: WarmupCosine


def plan_run(tcfg: Any, layout: BatchLayout, num_samples: int) -> RunPlan:
    total_steps, steps_per_epoch = total_steps_for(tcfg.steps, tcfg.epochs, num_samples, layout.global_batch)
    peak_lr = scale_lr(tcfg.base_lr, tcfg.base_batch_size, layout.global_batch)
    warmup = resolve_warmup_steps(tcfg.warmup_steps, tcfg.warmup_epochs, steps_per_epoch, total_steps)
    schedule = WarmupCosine(peak_lr, total_steps, warmup, tcfg.warmup_lr, tcfg.min_lr, tcfg.warmup_prefix)
    return RunPlan(layout, total_steps, warmup, peak_lr, schedule)


def _train(
    cfg: Any, out_dir: Path, ctx: DistContext, variant: str, resume: bool, data_dir: str | Path | None,
    data: TrainData | None, parts: ModelParts, on_recipe_change: str = "error",
) -> dict:
    wall_start = time.monotonic()
    tcfg, world, device = cfg.train, ctx.world, ctx.device
    layout = BatchLayout.of(tcfg.batch_size, world.world_size, tcfg.grad_accum_steps)
    if tcfg.nonfinite not in ("stop", "skip"):
        raise ConfigError(f"train.nonfinite: {tcfg.nonfinite!r} is not one of ['skip', 'stop']")
    if device.type == "cuda":
        enable_tf32()

    manager = CheckpointManager(out_dir / "checkpoints", tcfg.keep_checkpoints)
    summary_path, metrics_path = out_dir / "summary.json", out_dir / "metrics.jsonl"
    if ctx.is_master:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            _clear_run(manager, out_dir)
    barrier()

    # Model and loss: the same initial weights on every rank (DDP also broadcasts rank 0's).
    seed_everything(tcfg.seed)
    raw_model = parts.build_model(cfg.model).to(device)
    loss_fn = parts.build_loss(tcfg.loss, world.rank, world.world_size).to(device)
    num_params = sum(p.numel() for p in raw_model.parameters())
    if tcfg.freeze:  # before the optimiser, which then holds only what trains
        frozen = freeze_groups(raw_model, tcfg.freeze)
        _say(ctx, f"train.freeze {list(tcfg.freeze)}: {frozen.trainable:,} parameters train, {frozen.frozen:,} frozen")

    # The resume decision (and a fresh run's init_from weights) before the data, so that a refusal comes first.
    state, rng_state, init_info = LoopState(), None, None
    ckpt, last_ckpt = _checkpoint_to_resume(cfg, out_dir, ctx, manager, resume, on_recipe_change)
    if ckpt is None and tcfg.init_from:  # a fresh run: weights only; optimiser, schedule and step start anew
        init_info = init_from_weights(raw_model, tcfg.init_from, say=lambda message: _say(ctx, message))
        _say(ctx, f"initialised from {init_info['path']} ({init_info['source_format']} format, "
                  f"sha256 {init_info['sha256'][:12]}...)")

    data = data or train_data_for(cfg, data_dir)
    plan = plan_run(tcfg, layout, data.num_samples)
    _say(ctx, f"lr {tcfg.base_lr:g} at batch {tcfg.base_batch_size} -> {plan.peak_lr:g} at global batch "
              f"{layout.global_batch} ({world.world_size} proc x {layout.per_rank_batch} x {layout.grad_accum_steps} "
              f"accum); {plan.total_steps} steps, {plan.warmup_steps} warmup, {data.num_samples} samples")
    if layout.grad_accum_steps > 1:  # accumulation sums gradients; it does not widen the contrastive batch
        _say(ctx, f"note: contrastive negatives come from each micro-step's {world.world_size * layout.per_rank_batch} "
                  f"images, not the global batch of {layout.global_batch}; the paper's batch-4096 numbers need "
                  "4096 images per step across GPUs")

    optimizer = build_optimizer(
        raw_model, lr=plan.peak_lr, weight_decay=tcfg.weight_decay, betas=tcfg.betas,
        no_decay_keywords=tcfg.no_weight_decay_keywords,
    )
    scaler = grad_scaler(device, tcfg.precision)

    # Resume: everything but the RNG, which is restored after the loader exists (see below).
    if ckpt is not None:
        init_info = ckpt.get("init_from")
        if tcfg.init_from:
            _say(ctx, f"train.init_from {tcfg.init_from} not applied: {out_dir} holds checkpoints of this run, which "
                      "resumes (init_from applies to a fresh run only)")
        _check_resumable(ckpt, layout, last_ckpt)
        for part, saved in ((raw_model, "model"), (optimizer, "optimizer"), (scaler, "scaler")):
            part.load_state_dict(ckpt[saved])
        state, rng_state = LoopState(**ckpt["loop"]), ckpt["rng"][world.rank]
        _say(ctx, f"resuming from {last_ckpt} (step {state.step}/{plan.total_steps})")
        if ctx.is_master:
            truncate_after(metrics_path, state.step)
        done = broadcast_object(finished_summary(summary_path, state, plan.total_steps, tcfg.time_budget_s))
        if done is not None:
            _say(ctx, f"already finished: {summary_path}")
            return done

    model = wrap_model(raw_model, cfg, ctx)
    engine = Engine(model, loss_fn, optimizer, scaler, plan.schedule,
                    autocast_context(device, tcfg.precision), device,
                    model_kwargs=dict(getattr(loss_fn, "model_kwargs", {})))

    seed_everything(tcfg.seed + world.rank)  # per-rank randomness (Gumbel noise, drop-path) for a fresh run
    batches = data.make_batches(
        start_step=state.micro_step, batch_size=layout.per_rank_batch, rank=world.rank,
        world_size=world.world_size, seed=tcfg.seed, tokenize=getattr(raw_model, "tokenizer", None),
        pin_memory=device.type == "cuda",
    )
    if rng_state is not None:
        restore_rng_state(rng_state)

    loop_cfg = LoopConfig(
        total_steps=plan.total_steps, global_batch=layout.global_batch, grad_accum_steps=layout.grad_accum_steps,
        clip_grad=tcfg.clip_grad, nonfinite=tcfg.nonfinite, log_every=tcfg.log_every,
        checkpoint_every=tcfg.checkpoint_every, time_budget_s=tcfg.time_budget_s, loss_window=LOSS_WINDOW,
    )
    meta = {"config": cfg.run_dict(), "variant": variant, "seed": tcfg.seed, "world_size": world.world_size,
            "global_batch": layout.global_batch, "grad_accum_steps": layout.grad_accum_steps, "init_from": init_info}

    def save(loop_state: LoopState) -> Path:
        rngs = gather_to_all(capture_rng_state())  # a collective: every rank calls save
        path = manager.path_for(loop_state.step)
        if ctx.is_master:
            manager.save(loop_state.step, {
                "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "schedule": plan.schedule.state_dict(), "loop": loop_state.to_dict(), "rng": rngs, **meta,
            })
        return path

    progress = tqdm(total=plan.total_steps, initial=state.step, desc=f"train {variant}".strip(), dynamic_ncols=True,
                    mininterval=1.0 if sys.stderr.isatty() else 30.0, disable=not ctx.is_master)
    steps_before = state.step
    with MetricsLogger(metrics_path, enabled=ctx.is_master) as logger:
        try:
            result = train_loop(engine, batches, state, loop_cfg, save=save, log=logger.log,
                                extra_metrics=data.counters, last_checkpoint=last_ckpt, progress=progress)
        finally:
            progress.close()
            _close(batches)

    return _finish(cfg, result, out_dir, manager, ctx, plan=plan, data=data, variant=variant, num_params=num_params,
                   trainable_params=sum(p.numel() for p in raw_model.parameters() if p.requires_grad),
                   init_from=init_info, resumed_from=last_ckpt, trained=result.state.step != steps_before,
                   wall_start=wall_start,
                   save_model=lambda path: parts.save_model(path, raw_model, **{
                       **meta, "step": result.state.step, "data_content_hash": data.content_hash}))


def _checkpoint_to_resume(
    cfg: Any, out_dir: Path, ctx: DistContext, manager: CheckpointManager, resume: bool, on_recipe_change: str,
) -> tuple[dict | None, Path | None]:
    """The resume decision: the newest checkpoint of `out_dir`, loaded, and its path, or (None, None) to train from
    scratch. Rank 0 picks it (ranks must agree); a checkpoint of another recipe is refused, or with
    on_recipe_change="restart" the run directory is cleared."""
    latest = broadcast_object(manager.latest() if resume else None)
    ckpt = load_train_state(latest, map_location="cpu") if latest is not None else None  # RNG states stay on CPU
    changed = recipe_changes(ckpt.get("config"), cfg.to_dict(), type(cfg)().to_dict()) if ckpt else []
    if not changed:
        return ckpt, latest
    listing = "; ".join(changed[:6]) + ("; ..." if len(changed) > 6 else "")
    if on_recipe_change == "error":
        raise ConfigError(
            f"{out_dir} holds checkpoints of a different recipe ({listing}); resuming would continue the old run. "
            "Train from scratch with --on-recipe-change restart (or --no-resume), or give another --out"
        )
    _say(ctx, f"recipe changed since the checkpoints ({listing}): training from scratch")
    if ctx.is_master:
        _clear_run(manager, out_dir)
    barrier()
    return None, None


def wrap_model(raw_model: nn.Module, cfg: Any, ctx: DistContext) -> nn.Module:
    """The module the loop calls: compiled when train.compile, inside DistributedDataParallel when distributed."""
    model: nn.Module = torch.compile(raw_model) if cfg.train.compile else raw_model
    if not ctx.world.distributed:
        return model
    # Without the multi-label loss its logit scale gets no gradient; DDP must then look for unused parameters
    # (a graph walk per step, so only when needed). Buffers (BN statistics) stay per rank, as officially.
    uses_prompts = cfg.data.multi_label_nouns > 0 and cfg.train.loss.multi_label_weight > 0
    device = ctx.device
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False,
        find_unused_parameters=not uses_prompts,
    )


def _finish(cfg: Any, result: Any, out_dir: Path, manager: CheckpointManager, ctx: DistContext, *, plan: RunPlan,
            data: TrainData, variant: str, num_params: int, trainable_params: int, init_from: dict | None,
            resumed_from: Path | None, trained: bool, wall_start: float, save_model: Callable[[Path], Any]) -> dict:
    """The run's summary; rank 0 saves model.pt and writes summary.json (and its copy beside the checkpoints). A run
    that had nothing left to train reports the figures of the run that did the training."""
    tcfg, layout = cfg.train, plan.layout
    summary = build_summary(
        cfg.run_dict(), result, variant=variant, seed=tcfg.seed, preset=getattr(cfg, "preset", ""),
        data_content_hash=data.content_hash, device=device_description(ctx.device), world_size=layout.world_size,
        num_params=num_params, trainable_params=trainable_params, init_from=init_from,
        global_batch=layout.global_batch, per_rank_batch=layout.per_rank_batch,
        grad_accum_steps=layout.grad_accum_steps, base_lr=tcfg.base_lr, base_batch_size=tcfg.base_batch_size,
        peak_lr=plan.peak_lr, warmup_steps=plan.warmup_steps, total_steps=plan.total_steps,
        time_budget_s=tcfg.time_budget_s, data_counters=data.counters(),
        resumed_from=str(resumed_from) if resumed_from else None, loss_window=LOSS_WINDOW,
    )
    # The copy: Snakemake deletes a job's declared outputs (summary.json) before rerunning it, and a rerun that finds
    # the training complete must still report the losses and speed of the run that did the work.
    summary_copy = manager.directory / "summary.json"
    if not trained:
        summary.update(run_figures(summary_copy, summary["steps"]))
    if ctx.is_master:
        save_model(out_dir / "model.pt")
        summary["wall_time_s"] = time.monotonic() - wall_start
        finished = datetime.now(timezone.utc)  # start and end: the study's elapsed time when jobs ran side by side
        summary["started_at"] = (finished - timedelta(seconds=summary["wall_time_s"])).isoformat(timespec="seconds")
        summary["finished_at"] = finished.isoformat(timespec="seconds")
        write_summary_json(summary, out_dir / "summary.json")
        write_summary_json(summary, summary_copy)
        _say(ctx, f"done: {summary['steps']} steps, final loss {summary['final_loss']:.4f}, "
                  f"{summary['samples_per_s']:.1f} samples/s -> {out_dir}")
    barrier()
    return summary


def _clear_run(manager: CheckpointManager, out_dir: Path) -> None:
    shutil.rmtree(manager.directory, ignore_errors=True)
    for path in (out_dir / "metrics.jsonl", out_dir / "summary.json", out_dir / "model.pt"):
        path.unlink(missing_ok=True)


def _check_resumable(ckpt: dict, layout: BatchLayout, path: Path) -> None:
    """Exact resume needs the same data split and accumulation: refuse anything else with a clear message."""
    saved = (ckpt.get("world_size"), ckpt.get("global_batch"), ckpt.get("grad_accum_steps"))
    now = (layout.world_size, layout.global_batch, layout.grad_accum_steps)
    if saved != now:
        raise ConfigError(
            f"{path}: cannot resume a run of (processes, global batch, grad_accum_steps) = {saved} as {now}; "
            "use the same launch shape, or start a new run directory (resume=False)"
        )


def _close(batches: Any) -> None:
    close = getattr(batches, "close", None)
    if callable(close):
        close()


__all__ = ["BatchLayout", "ModelParts", "run_training", "total_steps_for", "train"]
