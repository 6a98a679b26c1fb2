"""torchrun sharding: every rank synthesises a disjoint subset of the image indices into the shared
output folder; rank 0 merges. Control traffic (barriers) goes over gloo, so the same code runs on CPU
processes and on GPUs (one per rank, ``cuda:LOCAL_RANK``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch.distributed as dist


@dataclass(frozen=True)
class RankInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: list[int]) -> list[int]:
        return indices[self.rank :: self.world_size]

    def device(self, requested: str) -> str:
        if requested.startswith("cuda") and self.world_size > 1 and ":" not in requested:
            return f"cuda:{self.local_rank}"
        return requested


def init_from_env() -> RankInfo:
    """Join the torchrun process group if launched by torchrun (WORLD_SIZE > 1); else a single rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return RankInfo()
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return RankInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(info: RankInfo) -> None:
    if info.world_size > 1:
        dist.barrier()


def finish(info: RankInfo) -> None:
    if info.world_size > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

