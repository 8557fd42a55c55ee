"""Clip- and video-level (multi-view) evaluation, with GFLOPs, throughput and video accounting.

The package is callable: `videotok.evaluate(model, data_dir, ...)` is the public API's evaluation
(`folder.evaluate_folder`), while `videotok.evaluate.engine` and the rest stay reachable."""
import sys
import types

from videotok.evaluate.aggregate import AGGREGATES, VideoRecords, ViewAccumulator, ViewMetrics
from videotok.evaluate.engine import EvalRow, PassOutcome, Runtime, run_pass
from videotok.evaluate.result import ClassAccuracy, EvaluationResult, VideoPrediction
from videotok.evaluate.runner import evaluate, find_backbone, pass_results
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
    "EvalRow",
    "EvaluationResult",
    "FallbackVideo",
    "IncompleteVideo",
    "PassOutcome",
    "Runtime",
    "UnreadableVideo",
    "VideoAccounting",
    "VideoList",
    "VideoPrediction",
    "VideoRecords",
    "ViewAccumulator",
    "ViewMetrics",
    "check_views",
    "default_views",
    "evaluate",
    "find_backbone",
    "pass_results",
    "parse_views",
    "run_pass",
]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        """`videotok.evaluate(model, data_dir, views=None, split="test", ...)`: see `folder.evaluate_folder`."""
        from videotok.evaluate.folder import evaluate_folder

        return evaluate_folder(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
