"""Data-parallel helpers for ``torchrun`` (DistributedDataParallel over NCCL or gloo).

Launch any script that calls :func:`radiologynet.train.fit` (or ``radiologynet finetune``)
with ``torchrun --nproc_per_node N``; :func:`init_from_env` sets up the process group from
torchrun's environment, and ``fit`` shards the data and averages gradients.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """Whether a process group is up (this process is one rank of several)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0)."""
    return rank() == 0


def init_from_env(backend: str | None = None) -> bool:
    """Initialise the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Returns whether a process group is now up. ``backend`` defaults to NCCL with CUDA,
    gloo otherwise; each rank uses ``cuda:LOCAL_RANK``.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def default_device() -> torch.device:
    """``cuda:LOCAL_RANK`` where CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def shard_indices(indices: torch.Tensor, *, pad: bool) -> torch.Tensor:
    """This rank's share of ``indices``: every ``world``-th one from ``rank``.

    With ``pad`` (training) the list is first padded by repeating its start so every rank
    gets the same count (the same number of optimiser steps, as DistributedSampler);
    without it (evaluation) nothing is repeated, so metrics count every sample once.
    """
    world = world_size()
    if world == 1:
        return indices
    if pad and len(indices) % world:
        extra = world - len(indices) % world
        indices = torch.cat([indices, indices[:extra]])
    return indices[rank() :: world]


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if is_distributed():
        dist.barrier()
