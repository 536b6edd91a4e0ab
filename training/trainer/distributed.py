"""Distributed set-up and seeding of a training run.

With ``WORLD_SIZE > 1`` (torchrun) the process group is initialised from the environment (NCCL on
GPUs, gloo on CPU) and each rank gets its device; a single process is a world of one, so the loop
has no separate code path for it.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> tuple[DistInfo, torch.device]:
    """Initialise torch.distributed from torchrun's env vars when ``WORLD_SIZE > 1``.

    Args:
        device: ``train.device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

    Returns:
        ``(DistInfo, device)``; under DDP on GPUs each rank gets ``cuda:LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"train.device={device!r} but CUDA is not available; use cpu or auto")
    if world <= 1:
        if not use_cuda:
            return DistInfo(), torch.device("cpu")
        return DistInfo(), torch.device("cuda" if device == "auto" else device)
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        torch_device = torch.device("cuda", local_rank)
    else:
        torch_device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", init_method="env://")
    return DistInfo(rank, world, local_rank), torch_device


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (all devices); optionally demand deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def barrier(info: DistInfo) -> None:
    """Wait for every rank (a no-op in a single process)."""
    if info.enabled:
        dist.barrier()


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch's tensors on ``device`` (``meta`` and other non-tensors stay behind)."""
    # Every tensor: image, depth, valid, labels, K and, for sequences, neighbours, poses and
    # the raw images of photometric losses.
    return {
        k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)
    }
