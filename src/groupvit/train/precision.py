"""Numeric precision of the training step, chosen once so the loop itself never branches on it.

`autocast_context(...)` returns a zero-argument factory: a torch.autocast context for bf16/fp16 on a GPU, else
nullcontext (a CPU always trains in fp32, whatever train.precision says). The grad scaler is a real one only for
fp16 on a GPU and a no-op otherwise (its calls stay in the loop unconditionally, nanoGPT style).
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype, or None when the step runs in fp32."""
    if precision not in DTYPES:
        raise ValueError(f"train.precision: {precision!r} is not one of {sorted(DTYPES)}")
    if precision == "fp32" or device.type == "cpu":
        return None
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("train.precision: bf16 is not supported on this GPU; use fp16 or fp32")
    return DTYPES[precision]


def autocast_context(device: torch.device, precision: str) -> Callable[[], AbstractContextManager]:
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return nullcontext
    return partial(torch.autocast, device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling is needed only for fp16 (bf16 has fp32's exponent range)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16" and device.type == "cuda")


def enable_tf32() -> None:
    """TF32 matmuls and convolutions on Ampere and newer GPUs (a no-op elsewhere)."""
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


__all__ = ["autocast_context", "autocast_dtype", "enable_tf32", "grad_scaler"]
