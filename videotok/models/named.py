"""Every named backbone, written out (timm-style) so that each name is found where it is defined.

`create_model(NAME, **overrides)` calls the function of that name; `overrides` (num_classes,
num_frames, img_size, tubelet_size, model_args keys ...) replace its defaults.
"""
from __future__ import annotations

from typing import Any

from videotok.models.factorised import FactorisedViViT
from videotok.models.registry import VIT_BASE, VIT_HUGE, VIT_LARGE, VIT_SMALL, VIT_TINY, named, register_model
from videotok.models.video_vit import VideoViT
from videotok.models.videomae import VideoMAE

TIMESFORMER = dict(attention="divided", tubelet_size=1, num_frames=8)  # Bertasius et al. 2021
VIVIT = dict(attention="joint", tubelet_size=2, num_frames=8)  # ViViT model 1, Arnab et al. 2021
VIVIT_FE = dict(tubelet_size=2, num_frames=8, temporal_depth=4)  # ViViT model 2
VIDEOMAE = dict(tubelet_size=2, num_frames=16)  # Tong et al. 2022, fine-tuned for classification


@register_model
def timesformer_tiny(**kwargs: Any) -> VideoViT:
    """TimeSformer on a 96-wide, 6-block ViT at 96 px: tests and CPU runs."""
    return VideoViT(**named("timesformer_tiny", VIT_TINY, TIMESFORMER, overrides=kwargs))


@register_model
def timesformer_small_patch16_224(**kwargs: Any) -> VideoViT:
    """TimeSformer on ViT-S/16 (DeiT-S), 8 x 224."""
    return VideoViT(**named("timesformer_small_patch16_224", VIT_SMALL, TIMESFORMER, overrides=kwargs))


@register_model
def timesformer_base_patch16_224(**kwargs: Any) -> VideoViT:
    """TimeSformer-B: ViT-B/16, 8 x 224, divided space-time attention (195.8 GFLOPs per view)."""
    return VideoViT(**named("timesformer_base_patch16_224", VIT_BASE, TIMESFORMER, overrides=kwargs))


@register_model
def vivit_tiny(**kwargs: Any) -> VideoViT:
    """ViViT model 1 on the tiny ViT, 2 x 16 x 16 tubelets: tests and CPU runs."""
    return VideoViT(**named("vivit_tiny", VIT_TINY, VIVIT, overrides=kwargs))


@register_model
def vivit_small_patch16_224(**kwargs: Any) -> VideoViT:
    """ViViT model 1 on ViT-S/16; with num_frames=1, tubelet_size=1 it is exactly DeiT-S."""
    return VideoViT(**named("vivit_small_patch16_224", VIT_SMALL, VIVIT, overrides=kwargs))


@register_model
def vivit_base_patch16_224(**kwargs: Any) -> VideoViT:
    """ViViT-B model 1: joint space-time attention over 2 x 16 x 16 tubelets, 8 x 224."""
    return VideoViT(**named("vivit_base_patch16_224", VIT_BASE, VIVIT, overrides=kwargs))


@register_model
def vivit_fe_tiny(**kwargs: Any) -> FactorisedViViT:
    """ViViT factorised encoder on the tiny ViT, a 2-block temporal encoder: tests and CPU runs."""
    return FactorisedViViT(**named("vivit_fe_tiny", VIT_TINY, VIVIT_FE, {"temporal_depth": 2}, overrides=kwargs))


@register_model
def vivit_fe_small_patch16_224(**kwargs: Any) -> FactorisedViViT:
    """ViViT factorised encoder (model 2) on ViT-S/16 with a 4-block temporal encoder."""
    return FactorisedViViT(**named("vivit_fe_small_patch16_224", VIT_SMALL, VIVIT_FE, overrides=kwargs))


@register_model
def vivit_fe_base_patch16_224(**kwargs: Any) -> FactorisedViViT:
    """ViViT-B factorised encoder (model 2): 12 spatial blocks per frame, 4 temporal blocks."""
    return FactorisedViViT(**named("vivit_fe_base_patch16_224", VIT_BASE, VIVIT_FE, overrides=kwargs))


@register_model
def videomae_tiny(**kwargs: Any) -> VideoMAE:
    """VideoMAE on the tiny ViT, 8 frames: tests and CPU runs."""
    return VideoMAE(**named("videomae_tiny", VIT_TINY, VIDEOMAE, {"num_frames": 8}, overrides=kwargs))


@register_model
def videomae_small_patch16_224(**kwargs: Any) -> VideoMAE:
    """VideoMAE ViT-S/16, 16 x 224."""
    return VideoMAE(**named("videomae_small_patch16_224", VIT_SMALL, VIDEOMAE, overrides=kwargs))


@register_model
def videomae_base_patch16_224(**kwargs: Any) -> VideoMAE:
    """VideoMAE ViT-B/16, 16 x 224 (about 180 GFLOPs per view)."""
    return VideoMAE(**named("videomae_base_patch16_224", VIT_BASE, VIDEOMAE, overrides=kwargs))


@register_model
def videomae_large_patch16_224(**kwargs: Any) -> VideoMAE:
    """VideoMAE ViT-L/16, 16 x 224."""
    return VideoMAE(**named("videomae_large_patch16_224", VIT_LARGE, VIDEOMAE, overrides=kwargs))


@register_model
def videomae_huge_patch16_224(**kwargs: Any) -> VideoMAE:
    """VideoMAE ViT-H/16, 16 x 224."""
    return VideoMAE(**named("videomae_huge_patch16_224", VIT_HUGE, VIDEOMAE, overrides=kwargs))
