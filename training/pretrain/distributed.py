"""One process or many (``torchrun``): who am I, which device, and the few collective steps pretraining needs.

``torchrun --nproc_per_node N -m app pretrain ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; the process
group uses NCCL on GPUs and gloo on CPUs. Without those variables everything below is a no-op.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Sequence

import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def share(self, items: Sequence[str]) -> list[str]:
        """This process's share of a list (every ``world_size``-th item of its sorted order)."""
        return [u for i, u in enumerate(sorted(items)) if i % self.world_size == self.rank]

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds in every process."""
        if not self.distributed:
            return flag
        t = torch.tensor([0 if flag else 1], device=self.device if self.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(t)
        return int(t.item()) == 0

    def close(self) -> None:
        if self.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def setup(device: str | None = None) -> DistContext:
    """Join the process group when started by torchrun; pick this process's device."""
    world = _env("WORLD_SIZE", 1)
    rank = _env("RANK", 0)
    local = _env("LOCAL_RANK", 0)
    want_cuda = device == "cuda" or (device is None and torch.cuda.is_available())
    if want_cuda:
        dev = torch.device("cuda", local if world > 1 else torch.cuda.current_device())
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        # Decoding the frame cache happens between collectives and may take a while on a first run.
        torch.distributed.init_process_group(backend, timeout=timedelta(hours=2))
        logger.info("process %d of %d on %s (%s)", rank, world, dev, backend)
    return DistContext(rank, world, local, dev)
