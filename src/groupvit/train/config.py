"""The optimisation recipe. Defaults are the paper's (AdamW, warmup + cosine, lr 1.6e-3 at batch 4096)."""
from __future__ import annotations

from dataclasses import dataclass, field

from groupvit.model.config import LossConfig  # the loss's settings live with the loss

__all__ = ["LossConfig", "TrainConfig"]


@dataclass
class TrainConfig:
    seed: int = 0
    batch_size: int = 4096  # global batch = per-process batch x processes x grad_accum_steps
    grad_accum_steps: int = 1
    steps: int = 0  # total optimiser steps; 0 = derive from epochs and the data size
    epochs: int = 30
    base_lr: float = 1.6e-3  # at base_batch_size; scaled linearly with the global batch
    base_batch_size: int = 4096
    min_lr: float = 4e-5
    warmup_lr: float = 4e-6
    warmup_steps: int = 0  # 0 = derive from warmup_epochs
    warmup_epochs: float = 2.0
    # False (official, timm's default): the cosine runs over all steps and the warmup overrides its first steps;
    # True: the cosine starts where the warmup ends, so the peak lr is reached exactly.
    warmup_prefix: bool = False
    weight_decay: float = 0.05  # 1-D parameters and biases are exempt
    # Parameters whose name contains one of these are exempt too. The official code passes empty lists here
    # (only 1-D params and biases are exempt there, so its 0-D logit scales are decayed): set [] to match it.
    no_weight_decay_keywords: list[str] = field(
        default_factory=lambda: [
            "pos_embed", "positional_embedding", "position_embedding", "group_token", "logit_scale",
        ]
    )
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    clip_grad: float = 5.0
    precision: str = "bf16"  # fp32 | bf16: bf16 autocasts on a GPU; a CPU always trains in fp32
    compile: bool = False
    device: str = "auto"  # auto (the local GPU if any, else CPU) | cpu | cuda
    # processes the workflow launches per training job (torchrun): 0 = one per GPU the job gets; N = N (gloo on a CPU)
    processes: int = 0
    checkpoint_every: int = 1000  # steps
    keep_checkpoints: int = 3
    log_every: int = 10
    nonfinite: str = "stop"  # stop | skip
    time_budget_s: float = 0.0  # 0 = no limit; >0 stops cleanly (with a checkpoint) after this wall time
    # Fine-tuning (train/finetune.py). init_from: weights a fresh run starts from ("" = a random init): a model.pt,
    # an official .pth or a Hugging Face folder that fits model.*; a run with checkpoints resumes from them instead.
    init_from: str = ""
    freeze: list[str] = field(default_factory=list)  # parameter groups that do not train (finetune.FREEZE_GROUPS)
    loss: LossConfig = field(default_factory=LossConfig)
