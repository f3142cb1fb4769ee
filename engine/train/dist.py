"""Distributed training through torchrun (DDP), or a single process when not launched by it.

`torchrun --nproc_per_node N -m explorer.cli train ...` sets RANK/WORLD_SIZE; we
then join the process group (nccl on CUDA, gloo on CPU), give each rank its own
data seed and device, average gradients with DDP, and let rank 0 alone write.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from engine.device import resolve_device


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device)   # a named device this machine lacks is refused, never replaced
    if dev.type == "cuda" and ":" not in str(device):
        dev = torch.device("cuda", local % torch.cuda.device_count())   # one GPU per local rank
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, dev)


def wrap(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    if info.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)


def barrier(info: DistInfo) -> None:
    if info.world > 1:
        torch_dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.world > 1 and torch_dist.is_initialized():
        torch_dist.destroy_process_group()
