"""Multi-process training with torch.distributed (torchrun), one process per device.

``torchrun --nproc-per-node K -m molgan train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous variables; :func:`init_from_env` then joins the process group
(NCCL on CUDA, gloo on CPU). Without those variables training is single-process and nothing
here is used.

How the work is split (see :class:`molgan.train.Trainer`): every rank draws the same global
batch order and the same global noise (same seeds) and keeps its own slice, so ``K`` ranks with
batch ``B`` each see exactly the graphs and noise one process with batch ``K * B`` would; the
generator and critic are wrapped in ``DistributedDataParallel``, which averages gradients, so
the update equals the single-process update on the global batch (tested to float tolerance).
The gradient penalty stays per sample. Only rank 0 evaluates, logs and writes checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank and world size from torchrun's environment variables (single process if unset)."""
    return DistInfo(rank=int(os.environ.get("RANK", 0)),
                    world_size=int(os.environ.get("WORLD_SIZE", 1)),
                    local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun; pick the local GPU on CUDA."""
    info = env_info()
    if not info.enabled:
        return info
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """``cuda`` becomes ``cuda:LOCAL_RANK`` in a multi-process job."""
    if info.enabled and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def barrier(info: DistInfo) -> None:
    """Wait for all ranks (no-op in a single process)."""
    if info.enabled:
        import torch.distributed as dist

        dist.barrier()
