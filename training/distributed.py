"""Distributed data-parallel set-up for ``torchrun``: which process this is, which device it drives.

``torchrun --nproc_per_node N -m app train ...`` (or ``--nnodes``/``--rdzv-*`` for several machines) sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; without them the run is a single process and nothing here does
anything. GPUs use NCCL (one GPU per process, ``cuda:LOCAL_RANK``), CPUs use gloo. Rank 0 alone evaluates,
logs and writes snapshots and checkpoints; the others wait at barriers. Snapshots are read back by every
rank, so on several machines the run folder must be on a shared filesystem.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)

TIMEOUT = datetime.timedelta(hours=1)
"""Long enough for rank 0's validation passes while the other ranks wait."""


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False
    """True when this run created the process group (and so destroys it at the end)."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def choose_device(preference: str | None, local_rank: int = 0) -> torch.device:
    if preference:
        device = torch.device(preference)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(device_preference: str | None = None, timeout: datetime.timedelta = TIMEOUT) -> DistInfo:
    """Join the process group torchrun describes (if any) and pick this process's device.

    ``timeout`` bounds how long a rank waits at a collective for the others (e.g. while rank 0 evaluates)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and not dist.is_initialized():
        return DistInfo(device=choose_device(device_preference))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = choose_device(device_preference, local_rank)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, timeout=timeout)
        owns = True
        logger.info("rank %d of %d on %s (%s)", rank, world, device, backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, owns)


def teardown(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def share(info: DistInfo, items: Sequence[str]) -> list[str]:
    """This process's share of a list (every ``world_size``-th item of its sorted order)."""
    return [u for i, u in enumerate(sorted(items)) if i % info.world_size == info.rank]


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_object(info: DistInfo, value: Any) -> Any:
    """Rank 0's ``value`` on every rank."""
    if not info.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(info: DistInfo, value: Any) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not info.distributed:
        return [value]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


def any_rank(info: DistInfo, flag: bool) -> bool:
    """True on every rank when ``flag`` is True on any rank (e.g. a stop request)."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
