"""Clip- and video-level (multi-view) evaluation, with GFLOPs, throughput and video accounting."""

from videotok.evaluate.aggregate import AGGREGATES, ViewAccumulator, ViewMetrics
from videotok.evaluate.result import ClassAccuracy, EvaluationResult
from videotok.evaluate.runner import eval_dataloader, evaluate, find_backbone
from videotok.evaluate.video_list import (
    FallbackVideo,
    IncompleteVideo,
    UnreadableVideo,
    VideoAccounting,
    VideoList,
)
from videotok.evaluate.views import check_views, default_views, parse_views

__all__ = [
    "AGGREGATES",
    "ClassAccuracy",
    "EvaluationResult",
    "FallbackVideo",
    "IncompleteVideo",
    "UnreadableVideo",
    "VideoAccounting",
    "VideoList",
    "ViewAccumulator",
    "ViewMetrics",
    "check_views",
    "default_views",
    "eval_dataloader",
    "evaluate",
    "find_backbone",
    "parse_views",
]
