"""Which frames of a video a clip takes: one rule for every reader (decord, PyAV from the start),
PyTorchVideo's (a time window rounded to frame indices, then ``UniformTemporalSubsample``'s
linspace), so each reader decodes only those frames and all pick the same ones."""

from __future__ import annotations

import math
from typing import Optional

import torch


def subsample_indices(num_available: int, num_samples: int) -> list[int]:
    """``UniformTemporalSubsample``'s choice of ``num_samples`` of ``num_available`` frames."""
    picks = torch.linspace(0, num_available - 1, num_samples).clamp(0, num_available - 1).long()
    return picks.tolist()


def frame_indices(fps: float, num_frames: int, start_sec: float, end_sec: float,
                  num_samples: Optional[int]) -> list[int]:
    """The frames of [start_sec, end_sec) with PyTorchVideo's rounding, ``num_samples`` of them
    spread as ``UniformTemporalSubsample`` spreads them (empty when the window holds none)."""
    start = math.ceil(fps * start_sec)  # same rounding as PyTorchVideo's decord reader
    end = min(math.ceil(fps * end_sec), num_frames)
    if start >= end:
        return []
    indices = list(range(start, end))
    if num_samples is not None:
        indices = [indices[i] for i in subsample_indices(len(indices), num_samples)]
    return indices
