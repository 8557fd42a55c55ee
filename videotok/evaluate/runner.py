"""``evaluate``: score a model on every view of every video of a split, account for every video.

A one-row pass of the evaluation engine (``videotok.evaluate.engine``): on Lightning Fabric, one
device or many, the forward pass timed on its own (clips/s excludes decoding). Unreadable videos
end up listed in the result, as do the videos read by the data module's fallback decoder
(decoders are never mixed silently); the data module's ``max_failure_rate`` is not applied here,
since an evaluation should report its failures rather than stop on them. Only when no video at
all could be read does ``evaluate`` raise, naming some of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from videotok.evaluate.engine import (
    EVAL_SPLITS,
    EvalRow,
    PassOutcome,
    Runtime,
    find_backbone,
    run_pass,
)
from videotok.evaluate.pass_store import PassStore
from videotok.evaluate.precision import short_precision
from videotok.evaluate.aggregate import VideoRecords
from videotok.evaluate.result import ClassAccuracy, EvaluationResult, VideoPrediction
from videotok.evaluate.statistics import AccuracyIntervals, VideoOutcomes, accuracy_intervals, accuracy_intervals_of
from videotok.evaluate.video_list import VideoList
from videotok.evaluate.views import check_views, default_views

__all__ = ["EVAL_SPLITS", "evaluate", "find_backbone", "pass_results", "predictions", "result_of"]


def evaluate(
    model: nn.Module,
    datamodule: Any,
    split: str = "test",
    views: Optional[tuple[int, int]] = None,
    aggregate: str = "softmax",
    device: str | torch.device = "cpu",
    progress: bool = True,
    precision: str = "32",
    extra: Optional[dict[str, Any]] = None,
    runtime: Optional[Runtime] = None,
    run_dir: Optional[Path] = None,
    signature: Optional[dict[str, Any]] = None,
    flush_every: int = 200,
) -> Optional[EvaluationResult]:
    """Clip- and video-level accuracy, GFLOPs per view, params and forward clips/s of ``model``.

    ``model``: a backbone from ``create_model`` or a module holding one as ``.model`` /
    ``.backbone`` (e.g. the training LightningModule), left in the train/eval mode it had.
    ``datamodule``: a ``KineticsDataModule``; ``split``: "val" or "test". ``views``: (clips,
    crops), default the backbone family's paper protocol (``default_views``). ``device`` and
    ``precision`` ("32", "bf16" or "16", autocast) name one device; ``runtime`` (Lightning's
    accelerator, devices, nodes, strategy) replaces them. With ``run_dir``, per-video results are
    flushed there (every ``flush_every`` videos per process) as the pass goes and a rerun with the
    same ``signature`` resumes. ``extra`` is copied into the result. Returns None on every rank but
    rank 0.
    """
    backbone = find_backbone(model)
    views = check_views(tuple(views)) if views is not None else default_views(backbone.model_name)
    runtime = runtime or Runtime.for_device(device, precision)
    outcome = run_pass([EvalRow("model", model)], datamodule, split, views, aggregate, runtime, progress,
                       store=PassStore(run_dir) if run_dir is not None else None, signature=signature,
                       flush_every=flush_every)
    if outcome is None:
        return None
    return result_of(outcome, "model", backbone, datamodule, split, views, aggregate, runtime, extra)


def pass_results(outcome: PassOutcome, rows: list[EvalRow], datamodule: Any, split: str,
                 views: tuple[int, int], aggregate: str, runtime: Runtime,
                 extras: dict[str, dict[str, Any]]) -> dict[str, EvaluationResult]:
    """Every row's EvaluationResult of a finished pass (``extras``: row name -> its ``extra``). The
    rows' intervals come from one set of resamples (the same videos)."""
    per_video = {row.name: predictions(outcome.rows[row.name].records, outcome.video_list) for row in rows}
    intervals = accuracy_intervals_of([VideoOutcomes.from_predictions(per_video[row.name]) for row in rows])
    return {row.name: result_of(outcome, row.name, row.backbone, datamodule, split, views, aggregate, runtime,
                                extras.get(row.name), reducer=row.reducer, intervals=found)
            for row, found in zip(rows, intervals)}


def result_of(outcome: PassOutcome, name: str, backbone: nn.Module, datamodule: Any, split: str,
              views: tuple[int, int], aggregate: str, runtime: Runtime, extra: Optional[dict[str, Any]] = None,
              reducer: Optional[nn.Module] = None, intervals: Optional[AccuracyIntervals] = None) -> EvaluationResult:
    """Row ``name`` of ``outcome`` as an EvaluationResult (``reducer``: the row's, if not the backbone's;
    ``intervals``: its top-1 intervals when computed already, else computed here)."""
    row = outcome.rows[name]
    if len(row.records) == 0:
        shown = "; ".join(f"{p} ({r})" for p, r in outcome.skipped[:5])
        raise RuntimeError(
            f"no video of {datamodule.data_dir}/{split}.csv could be read "
            f"({len(outcome.skipped)} failed): {shown}"
        )
    metrics = row.records.metrics(datamodule.num_classes, row.duplicates)
    video_list = outcome.video_list
    accounting = video_list.account(metrics.views_per_video, outcome.skipped, views[0] * views[1])
    reducer = reducer if reducer is not None else getattr(backbone, "reducer", None)
    per_video = predictions(row.records, video_list)
    intervals = intervals or accuracy_intervals(VideoOutcomes.from_predictions(per_video))
    return EvaluationResult(
        model=backbone.model_name or type(backbone).__name__,
        reducer=getattr(reducer, "name", "none"),
        split=split,
        views=tuple(views),
        aggregate=aggregate,
        clip_top1=metrics.clip_top1,
        clip_top5=metrics.clip_top5,
        video_top1=metrics.video_top1,
        video_top5=metrics.video_top5,
        topk=metrics.topk,
        gflops_per_view=row.gflops_per_view,
        gflops_per_view_blank=row.cost.gflops,
        params_m=row.cost.params_m,
        clips_per_second=row.clips_per_second,
        model_seconds=row.model_seconds,
        videos_per_second=row.videos_per_second,
        videos_expected=accounting.videos_expected,
        videos_evaluated=accounting.videos_evaluated,
        views_evaluated=metrics.num_views,
        duplicate_views=metrics.duplicates,
        video_list_hash=video_list.short_hash,
        video_list_sha256=video_list.sha256,
        unreadable=accounting.unreadable,
        incomplete=accounting.incomplete,
        unaccounted=accounting.unaccounted,
        decoder=str(getattr(datamodule, "decoder", "")),
        decoder_fallbacks=video_list.fallbacks(outcome.fallbacks),
        per_class=[
            ClassAccuracy(cls, top1, n)
            for cls, top1, n in zip(datamodule.classes, metrics.per_class_top1, metrics.per_class_videos)
        ],
        predictions=per_video,
        clip_top1_low=intervals.clip_top1.low,
        clip_top1_high=intervals.clip_top1.high,
        video_top1_low=intervals.video_top1.low,
        video_top1_high=intervals.video_top1.high,
        data_dir=str(datamodule.data_dir),
        device=outcome.device,
        precision=short_precision(runtime.precision),
        timing=outcome.timing_summary(),
        extra=dict(extra or {}),
    )


def predictions(records: VideoRecords, video_list: VideoList) -> list[VideoPrediction]:
    """Each video's prediction, in the video list's order, named by its path."""
    ordered = records.in_order()
    return [
        VideoPrediction(video_list.path(int(v)), int(label), int(n), int(hits), classes, scores)
        for v, label, n, hits, classes, scores in zip(
            ordered.video_index, ordered.label, ordered.views, ordered.clip_hit1,
            ordered.top_classes.tolist(), ordered.top_scores.tolist())
    ]
