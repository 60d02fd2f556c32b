"""Data-parallel training under ``torchrun``: shards of the stream, averaged gradients.

Each rank trains on its own contiguous shard of the training stream; after every backward
pass the gradients are averaged over all ranks (``all_reduce``), so every rank takes the same
optimizer step and all replicas stay identical, exactly as DistributedDataParallel does
without its bucketing. gloo on CPU, nccl on GPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist

from models.dataset import as_id_tensor


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    device: torch.device  # this rank's: its own GPU (LOCAL_RANK) on CUDA, else the CPU

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """torchrun sets these for every process it starts."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group torchrun prepared (gloo on CPU, nccl on CUDA).

    On CUDA each rank takes the GPU of its local rank on this node, whatever ``device``
    named: torchrun starts one process per GPU.
    """
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)


def shard(ids: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's contiguous slice; every shard has the same length (the tail is dropped)."""
    ids = as_id_tensor(ids)
    size = len(ids) // world_size
    return ids[rank * size : (rank + 1) * size]


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Replace every gradient by its mean over all ranks."""
    world_size = dist.get_world_size()
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)
            parameter.grad /= world_size


def finish_distributed() -> None:
    """Leave the group cleanly (a barrier first avoids aborts at exit seen with gloo)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
