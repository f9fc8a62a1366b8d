"""The one reader of torchrun's environment, and the device each process uses.

``torchrun --nproc_per_node=N`` starts N processes with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``
set; alone, none is set and a process is rank 0 of 1. ``mlrn upscale`` shards its files by rank and
``mlrn train`` joins a process group (:mod:`mlrn_core.trainer`); both read the environment here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlrn_core.tiling import DeviceError, pick_device

if TYPE_CHECKING:  # read without torch: a cached OpenVINO run of mlrn upscale never imports it
    import torch


class TorchrunError(ValueError):
    """The torchrun variables are there but do not make sense; the message names them."""


@dataclass(frozen=True)
class Dist:
    """This process's place: ``rank`` of ``world`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env(env: Mapping[str, str] | None = None) -> Dist:
    """The process's :class:`Dist` from torchrun's variables (``os.environ`` by default)."""
    env = os.environ if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise TorchrunError(f"cannot read the torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {exc}") from None
    if world < 1 or not 0 <= rank < world:
        raise TorchrunError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return Dist(rank, world, local)


def device_for(preference: str, dist: Dist) -> torch.device:
    """The device for one process: ``cuda:LOCAL_RANK`` when several processes share the machine's GPUs."""
    device = pick_device(preference)
    if device.type == "cuda" and dist.enabled and device.index is None:
        import torch

        count = torch.cuda.device_count()
        if dist.local_rank >= count:
            raise DeviceError(f"process {dist.local_rank} needs GPU {dist.local_rank}, but only {count} are visible")
        device = torch.device("cuda", dist.local_rank)
    return device
