"""Clip transforms (PyTorchVideo's), on sample dicts whose ``video`` is float [C, T, H, W] 0..255.

Spatial work comes before ``/255`` and normalisation, so those touch only the final crop.
Evaluation is split in two: ``eval_clip_transform`` once per decoded clip, then
``eval_view_transform`` once per spatial crop of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchvision.transforms import Compose, RandomCrop, RandomHorizontalFlip

from videotok.data.pytorchvideo_compat import (
    ApplyTransformToKey,
    Div255,
    Normalize,
    RandomShortSideScale,
    ShortSideScale,
    UniformCropVideo,
    UniformTemporalSubsample,
)

SampleTransform = Callable[[dict], dict]
CROPS = (1, 3)  # spatial crops per clip: the centre, or both ends and the centre of the long side


def check_views(views: Sequence[int], option: str = "views") -> tuple[int, int]:
    """(clips >= 1, crops 1 or 3): the views of a video evaluation can cut. Errors name `option`."""
    if len(views) != 2:
        raise ValueError(f"{option} must be (clips, crops), got {tuple(views)!r}")
    clips, crops = int(views[0]), int(views[1])
    if clips < 1 or crops not in CROPS:
        raise ValueError(f"{option}: clips must be >= 1 and crops 1 or 3, got {clips}x{crops}")
    return clips, crops


def train_transform(
    num_frames: int,
    scale: tuple[int, int],
    crop_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    horizontal_flip: bool = True,
) -> SampleTransform:
    """Random short-side scale in ``scale``, random square crop, optional flip, normalise."""
    steps: list[Callable] = [
        UniformTemporalSubsample(num_frames),  # no-op when the reader already subsampled
        RandomShortSideScale(min_size=scale[0], max_size=scale[1]),
        RandomCrop(crop_size),  # on [C, T, H, W]: one crop for every frame
    ]
    if horizontal_flip:
        steps.append(RandomHorizontalFlip(p=0.5))
    steps += [Div255(), Normalize(tuple(mean), tuple(std))]
    return ApplyTransformToKey("video", Compose(steps))


def eval_clip_transform(num_frames: int, short_side: int) -> SampleTransform:
    """Per decoded clip: ``num_frames`` frames, short side scaled to ``short_side``."""
    return ApplyTransformToKey(
        "video", Compose([UniformTemporalSubsample(num_frames), ShortSideScale(short_side)])
    )


class _SpatialIndex:
    """Maps a crop number to ``uniform_crop``'s position: one crop is the centre (1); three
    are the two ends and the centre (0, 1, 2) along the long side."""

    def __init__(self, num_crops: int) -> None:
        self.num_crops = check_views((1, num_crops), "spatial crops per clip")[1]

    def __call__(self, sample: dict) -> dict:
        sample["spatial_index"] = 1 if self.num_crops == 1 else int(sample["crop_index"])
        return sample


def eval_view_transform(
    crop_size: int, num_crops: int, mean: Sequence[float], std: Sequence[float]
) -> SampleTransform:
    """Per view: crop ``crop_index`` of ``num_crops`` (see ``_SpatialIndex``), normalise."""
    return Compose(
        [
            _SpatialIndex(num_crops),
            UniformCropVideo(crop_size, aug_index_key="spatial_index"),
            ApplyTransformToKey("video", Compose([Div255(), Normalize(tuple(mean), tuple(std))])),
        ]
    )


def denormalize(video: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo ``Normalize`` and ``/255`` on [..., C, T, H, W] (for looking at batches)."""
    shape = (len(mean), 1, 1, 1)
    m = torch.tensor(mean, dtype=video.dtype, device=video.device).view(shape)
    s = torch.tensor(std, dtype=video.dtype, device=video.device).view(shape)
    return (video * s + m) * 255.0
