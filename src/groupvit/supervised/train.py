"""Train the supervised reference for the main model's budget: same steps, batch, learning-rate schedule (linear
scaling, warmup, cosine) and AdamW settings (groupvit.train's own helpers), per-pixel cross-entropy on the world's
ground-truth masks.

The run folder holds checkpoints/step-NNNNNNNN.pt (every train.checkpoint_every steps, atomic, the newest
train.keep_checkpoints), metrics.jsonl (every train.log_every steps), model.pt and summary.json. A killed run resumes
from its newest checkpoint and ends with the same weights as an uninterrupted one (batches are a function of the
step; model, optimiser and RNG states are restored).
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm import tqdm

from groupvit.dataclass_io import ConfigError
from groupvit.supervised.data import MaskedSplit, PairedAugment, SupervisedBatches, check_against_shards, \
    render_train_split
from groupvit.supervised.model import build_supervised_model, save_supervised
from groupvit.train.checkpointing import CheckpointManager, capture_rng_state, load_train_state, restore_rng_state
from groupvit.train.metrics_log import MetricsLogger, truncate_after
from groupvit.train.optim import build_optimizer
from groupvit.train.recipe import training_recipe
from groupvit.train.runner import BatchLayout, plan_run
from groupvit.train.schedule import set_lr
from groupvit.train.summary import device_description, git_commit, write_summary_json

LOSS_WINDOW = 50  # summary: final_loss is the mean of the last N steps' losses


def _say(message: str) -> None:
    print(f"[train-supervised] {message}", file=sys.stderr, flush=True)


def _device(name: str) -> torch.device:
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def _data_content_hash(train_dir: Path) -> str | None:
    card = train_dir.parent / "datacard.json"
    return json.loads(card.read_text()).get("content_hash") if card.is_file() else None


def _resume_state(cfg: Any, out_dir: Path, manager: CheckpointManager, resume: bool,
                  on_recipe_change: str) -> tuple[dict | None, Path | None]:
    latest = manager.latest() if resume else None
    if latest is None:
        return None, None
    state = load_train_state(latest)
    if state.get("recipe") == training_recipe(cfg):
        return state, latest
    if on_recipe_change == "error":
        raise ConfigError(f"{out_dir} holds checkpoints of a different recipe; resuming would continue the old run. "
                          "Train from scratch with --on-recipe-change restart (or --no-resume), or give another --out")
    _say("recipe changed since the checkpoints: training from scratch")
    _clear_run(out_dir, manager)
    return None, None


def _clear_run(out_dir: Path, manager: CheckpointManager) -> None:
    shutil.rmtree(manager.directory, ignore_errors=True)
    for name in ("metrics.jsonl", "summary.json", "model.pt"):
        (out_dir / name).unlink(missing_ok=True)


def train_supervised(cfg: Any, out_dir: str | Path, *, variant: str = "", resume: bool = True,
                     train_dir: str | Path | None = None, split: MaskedSplit | None = None,
                     on_recipe_change: str = "error", progress: bool = True) -> dict:
    """Train on a resolved ExperimentConfig (variant and seed applied) into `out_dir`; returns the summary.

    train_dir: the world's train shards, checked against the rendered images when present (default:
    data/<preset>/synthetic/train). `split` replaces the rendered train split (tests)."""
    if on_recipe_change not in ("error", "restart"):
        raise ValueError(f"on_recipe_change must be 'error' or 'restart', got {on_recipe_change!r}")
    wall_start = time.monotonic()
    out_dir = Path(out_dir)
    tcfg = cfg.train
    device = _device(tcfg.device)
    manager = CheckpointManager(out_dir / "checkpoints", tcfg.keep_checkpoints)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        _clear_run(out_dir, manager)
    ckpt, last = _resume_state(cfg, out_dir, manager, resume, on_recipe_change)

    torch.manual_seed(tcfg.seed)
    model = build_supervised_model(cfg.model, list(cfg.world.classes)).to(device)
    train_dir = Path(train_dir) if train_dir is not None else cfg.data_dir / "synthetic" / "train"
    if split is None:
        split = render_train_split(cfg.world, progress=progress)
        if train_dir.is_dir():
            _say(f"rendered images match the shards of {train_dir} "
                 f"({check_against_shards(split, train_dir, cfg.world.shard_size)} compared)")
    plan = plan_run(tcfg, BatchLayout(tcfg.batch_size, 1, 1), len(split))
    optimizer = build_optimizer(model, lr=plan.peak_lr, weight_decay=tcfg.weight_decay, betas=tcfg.betas,
                                no_decay_keywords=tcfg.no_weight_decay_keywords)
    batches = SupervisedBatches(split, PairedAugment(cfg.data.augment, cfg.model.image.image_size),
                                tcfg.batch_size, tcfg.seed)
    step, train_time, losses = 0, 0.0, deque(maxlen=LOSS_WINDOW)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, train_time = int(ckpt["step"]), float(ckpt["train_time_s"])
        losses.extend(ckpt["losses"])
        restore_rng_state(ckpt["rng"])
        truncate_after(out_dir / "metrics.jsonl", step)
        _say(f"resuming from {last} (step {step}/{plan.total_steps})")
    _say(f"lr {tcfg.base_lr:g} at batch {tcfg.base_batch_size} -> {plan.peak_lr:g} at batch {tcfg.batch_size}; "
         f"{plan.total_steps} steps, {plan.warmup_steps} warmup, {len(split)} samples, {device}")

    def save(at: int) -> None:
        manager.save(at, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "recipe": training_recipe(cfg), "train_time_s": train_time, "losses": list(losses),
                          "rng": capture_rng_state(), "variant": variant, "seed": tcfg.seed})

    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(total=plan.total_steps, initial=step, desc=f"train-supervised {variant}".strip(), dynamic_ncols=True,
               mininterval=1.0 if sys.stderr.isatty() else 30.0, disable=not progress)
    with MetricsLogger(out_dir / "metrics.jsonl") as logger:
        try:
            while step < plan.total_steps:
                started = time.monotonic()
                lr = plan.schedule(step)
                set_lr(optimizer, lr)
                images, masks = batches.batch(step)
                loss = F.cross_entropy(model(images.to(device)), masks.to(device))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {float(loss)} at step {step}; lower train.base_lr")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, tcfg.clip_grad if tcfg.clip_grad > 0 else
                                                           float("inf"))
                optimizer.step()
                step += 1
                value = float(loss.detach())
                losses.append(value)
                train_time += time.monotonic() - started
                bar.update(1)
                if step % max(1, tcfg.log_every) == 0 or step == plan.total_steps:
                    logger.log({"step": step, "lr": lr, "loss": value, "grad_norm": float(grad_norm),
                                "samples_seen": step * tcfg.batch_size,
                                "samples_per_s": step * tcfg.batch_size / max(train_time, 1e-9),
                                "elapsed_s": round(train_time, 3)})
                    bar.set_postfix(loss=f"{value:.4f}", refresh=False)
                if step % max(1, tcfg.checkpoint_every) == 0 or step == plan.total_steps:
                    save(step)
        finally:
            bar.close()

    summary = {
        "variant": variant, "family": "supervised", "seed": tcfg.seed, "preset": getattr(cfg, "preset", ""),
        "steps": step, "total_steps": plan.total_steps, "samples_seen": step * tcfg.batch_size,
        "global_batch": tcfg.batch_size, "base_lr": tcfg.base_lr, "peak_lr": plan.peak_lr,
        "warmup_steps": plan.warmup_steps, "train_time_s": train_time,
        "samples_per_s": step * tcfg.batch_size / max(train_time, 1e-9),
        "final_loss": sum(losses) / len(losses) if losses else None, "loss_window": LOSS_WINDOW,
        "num_params": sum(p.numel() for p in model.parameters()), "num_train_samples": len(split),
        "data_content_hash": _data_content_hash(train_dir), "device": device_description(device),
        "resumed_from": str(last) if last else None, "git_commit": git_commit(), "torch_version": torch.__version__,
        "config": cfg.run_dict(),
    }
    save_supervised(out_dir / "model.pt", model, variant=variant, seed=tcfg.seed, step=step,
                    preset=summary["preset"])
    summary["wall_time_s"] = time.monotonic() - wall_start
    finished = datetime.now(timezone.utc)
    summary["started_at"] = (finished - timedelta(seconds=summary["wall_time_s"])).isoformat(timespec="seconds")
    summary["finished_at"] = finished.isoformat(timespec="seconds")
    write_summary_json(summary, out_dir / "summary.json")
    _say(f"done: {step} steps, final loss {summary['final_loss']:.4f}, {summary['samples_per_s']:.1f} samples/s "
         f"-> {out_dir}")
    return summary
