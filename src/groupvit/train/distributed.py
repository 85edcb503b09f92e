"""Process-group setup for torchrun and SLURM launches; a single process needs none of it.

Launch lines (the same `groupvit train` command in every case; each process reads its rank from the environment):

    # one process (CPU or one GPU)
    groupvit train --preset default --variant groupvit_2stage --seed 0 --out runs/x

    # one node, 8 GPUs (nccl) or 2 CPU processes (gloo)
    torchrun --standalone --nproc_per_node 8 -m groupvit.cli train --preset paper --variant ... --out runs/x

    # multi-node on SLURM: one torchrun per node, standard c10d rendezvous on the first node
    srun --nodes 2 --ntasks-per-node 1 --gpus-per-node 8 bash -c 'torchrun --nnodes $SLURM_NNODES \
        --nproc_per_node 8 --rdzv_id $SLURM_JOB_ID --rdzv_backend c10d \
        --rdzv_endpoint $(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1):29500 \
        -m groupvit.cli train --preset paper --variant groupvit_2stage --seed 0 --out runs/x'

    # or without torchrun: `srun --ntasks-per-node 8 groupvit train ...` with MASTER_ADDR/MASTER_PORT exported;
    # world_info_from_env() then falls back to SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID.

Global-batch negatives come from the loss's differentiable all-gather (GroupViTLoss(loss_cfg, rank, world_size)),
the loader splits the data by rank, and only rank 0 (`is_master`) logs and writes files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class WorldInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_master(self) -> bool:
        return self.rank == 0


def world_info_from_env(env: dict[str, str] | None = None) -> WorldInfo:
    """Rank, local rank and world size from torchrun's variables, else SLURM's, else a single process."""
    env = dict(os.environ) if env is None else env
    for rank_key, local_key, size_key in (
        ("RANK", "LOCAL_RANK", "WORLD_SIZE"),
        ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS"),
        ("PMI_RANK", "MPI_LOCALRANKID", "PMI_SIZE"),
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_SIZE"),
    ):
        if rank_key in env and size_key in env:
            return WorldInfo(int(env[rank_key]), int(env.get(local_key, 0)), int(env[size_key]))
    return WorldInfo()


@dataclass(frozen=True)
class DistContext:
    """What the rest of training needs to know about the process: who it is and where it computes."""

    world: WorldInfo
    device: torch.device
    backend: str | None  # None when single-process

    @property
    def is_master(self) -> bool:
        return self.world.is_master


def pick_device(local_rank: int = 0, prefer: str = "auto") -> torch.device:
    """`cuda:<local_rank>` when a GPU is visible (and not refused), else the CPU."""
    if prefer in ("auto", "cuda") and torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if prefer == "cuda":
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device("cpu")


def init_distributed(prefer_device: str = "auto", timeout_s: float = 1800.0) -> tuple[DistContext, bool]:
    """Join the process group the launcher describes (nccl on GPU, gloo on CPU); no-op for one process.

    Returns the context and whether this call created the group (and so should destroy it at the end); a group
    that a caller (a test, a notebook) created already is used as is.
    """
    world = world_info_from_env()
    device = pick_device(world.local_rank, prefer_device)
    if not world.distributed:
        return DistContext(world, device, None), False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if dist.is_initialized():
        return DistContext(world, device, dist.get_backend()), False
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    dist.init_process_group(
        backend, rank=world.rank, world_size=world.world_size, timeout=timedelta(seconds=timeout_s)
    )
    return DistContext(world, device, backend), True


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def any_true(flag: torch.Tensor) -> bool:
    """Whether `flag` is set on any rank (one scalar all-reduce; a host sync, so call it only at check points)."""
    flag = flag.detach().float().reshape(1)
    if is_dist():
        flag = flag.clone()
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item() > 0)


def gather_to_all(obj: object) -> list:
    """Every rank's `obj`, in rank order (used for per-rank RNG states in checkpoints)."""
    if not is_dist():
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if is_dist():
        dist.barrier()


def broadcast_object(obj: object, src: int = 0) -> object:
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


__all__ = [
    "DistContext", "WorldInfo", "any_true", "barrier", "broadcast_object", "cleanup_distributed", "gather_to_all",
    "init_distributed", "is_dist", "pick_device", "world_info_from_env",
]
