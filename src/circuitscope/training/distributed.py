"""Data-parallel training with torch.distributed: launched by `torchrun`, gloo on CPU, NCCL on GPU.

Every process reads the same global batch and keeps its own rows (rank r of W
takes rows [r·B/W, (r+1)·B/W)); DDP averages the gradients, so W processes take
the same steps as one process with the whole batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from circuitscope.errors import CircuitscopeError


@dataclass
class DistInfo:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def rows(self, batch_size: int) -> tuple[int, int] | None:
        """This process's rows of a global batch (None when alone)."""
        if self.world_size == 1:
            return None
        if batch_size % self.world_size:
            raise CircuitscopeError(
                f"batch size {batch_size} is not divisible by {self.world_size} processes"
            )
        share = batch_size // self.world_size
        return self.rank * share, (self.rank + 1) * share


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CircuitscopeError("device 'cuda' asked for, but torch sees no CUDA device")
    return torch.device(device)


def setup(device: str) -> DistInfo:
    """Join the process group when started by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    target = resolve_device(device)
    if world == 1:
        return DistInfo(0, 1, target)
    if not dist.is_initialized():
        backend = "nccl" if target.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    rank = dist.get_rank()
    if target.type == "cuda":
        target = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(target)
    return DistInfo(rank, dist.get_world_size(), target)


def all_reduce_sum(tensor: Tensor, info: DistInfo) -> Tensor:
    if info.world_size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(info: DistInfo) -> None:
    if info.world_size > 1:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
