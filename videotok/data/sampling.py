"""Which videos a (rank, worker) reads, and which clips of a video it takes.

Our datasets are iterable, so Lightning's DistributedSampler never reaches them: we shard
ourselves. Videos are dealt round-robin, first over ranks (torch.distributed), then over the
DataLoader workers of each rank.

- Evaluation (``even=False``): every video exactly once over all ranks and workers; ranks may
  get one video more than others. Nothing is padded, so metrics are exact.
- Training (``even=True``): a seeded per-epoch shuffle, identical on every rank, then padded
  by wrapping around so every rank gets the same number of videos (and DDP the same number of
  steps).

Clip times come from PyTorchVideo's clip samplers; the clip duration is computed per video
from its own frame rate, so ``sampling_rate`` really is a frame interval.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
import torch.distributed as dist

from videotok.data.pytorchvideo_compat import (
    ClipSampler,
    ConstantClipsPerVideoSampler,
    RandomClipSampler,
)


def distributed_rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def worker_id_count() -> tuple[int, int]:
    """(worker id, number of workers) of the current DataLoader worker, (0, 1) in-process."""
    info = torch.utils.data.get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


def rank_indices(
    num_items: int,
    rank: int,
    world_size: int,
    *,
    even: bool = False,
    shuffle: bool = False,
    seed: int = 0,
    epoch: int = 0,
) -> list[int]:
    """Indices of ``range(num_items)`` read by ``rank`` (see the module docstring)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    if shuffle:
        g = torch.Generator().manual_seed(seed + epoch)
        order = torch.randperm(num_items, generator=g).tolist()
    else:
        order = list(range(num_items))
    if even and num_items:
        total = math.ceil(num_items / world_size) * world_size
        order = [order[i % num_items] for i in range(total)]  # wrap around to pad
    return order[rank::world_size]


def shard_indices(
    num_items: int,
    rank: int,
    world_size: int,
    worker_id: int,
    num_workers: int,
    **kwargs,
) -> list[int]:
    """Indices read by one DataLoader worker of one rank (kwargs as ``rank_indices``)."""
    if not 0 <= worker_id < num_workers:
        raise ValueError(f"worker {worker_id} outside {num_workers} workers")
    return rank_indices(num_items, rank, world_size, **kwargs)[worker_id::num_workers]


def clip_duration(num_frames: int, sampling_rate: int, fps: float) -> Fraction:
    """Seconds spanned by ``num_frames`` frames taken every ``sampling_rate`` frames."""
    return Fraction(num_frames * sampling_rate) / Fraction(fps).limit_denominator(100_000)


def train_clip_sampler(duration: Fraction) -> ClipSampler:
    """One clip at a uniformly random start."""
    return RandomClipSampler(duration)


def eval_clip_sampler(duration: Fraction, num_clips: int, num_crops: int) -> ClipSampler:
    """``num_clips`` evenly spaced clips, each returned ``num_crops`` times (aug_index = crop)."""
    return ConstantClipsPerVideoSampler(duration, clips_per_video=num_clips, augs_per_clip=num_crops)
