"""``evaluate``: score a model on every view of every video of a split, account for every video.

One process, no Lightning Trainer: a plain loop over the data module's evaluation loader, so
the forward pass can be timed on its own (clips/s excludes decoding) and nothing is averaged
behind our back. Unreadable videos arrive in ``batch["skipped"]`` and end up listed in the
result, as do the videos read by the data module's fallback decoder (``batch["fallbacks"]``:
decoders are never mixed silently); the data module's ``max_failure_rate`` is not applied here, since an evaluation should
report its failures rather than stop on them. Only when no video at all could be read does
``evaluate`` raise, naming some of them.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from videotok.evaluate.aggregate import ViewAccumulator, check_aggregate
from videotok.evaluate.precision import autocast_dtype
from videotok.evaluate.result import ClassAccuracy, EvaluationResult
from videotok.evaluate.video_list import VideoList
from videotok.evaluate.views import check_views, default_views
from videotok.flops import measure_cost

EVAL_SPLITS = {"val": "validate", "test": "test"}  # split -> data module stage


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
) -> EvaluationResult:
    """Clip- and video-level accuracy, GFLOPs per view, params and forward clips/s of ``model``.

    ``model``: a backbone from ``create_model`` or a module holding one as ``.model`` /
    ``.backbone`` (e.g. the training LightningModule); called as ``model(video) -> logits``.
    It is moved to ``device`` and left in the train/eval mode it had.
    ``datamodule``: a ``KineticsDataModule``; ``split``: "val" or "test". ``views``: (clips,
    crops), default the backbone family's paper protocol (``default_views``). ``precision``:
    "32", "bf16"/"bf16-mixed" or "16"/"16-mixed" (autocast). ``extra`` is copied into the result.
    """
    if split not in EVAL_SPLITS:
        raise ValueError(f"split={split!r}: evaluation runs on one of {', '.join(EVAL_SPLITS)}")
    check_aggregate(aggregate)
    dtype = autocast_dtype(precision)
    backbone = find_backbone(model)
    views = check_views(tuple(views)) if views is not None else default_views(backbone.model_name)
    device = torch.device(device)

    datamodule.prepare_data()
    datamodule.setup(EVAL_SPLITS[split])
    _check_compatible(backbone, datamodule)
    video_list = VideoList.from_labeled_paths(datamodule.videos(split), datamodule.data_dir)
    loader = eval_dataloader(datamodule, split, views)

    was_training = model.training
    model.to(device)
    cost = measure_cost(backbone)
    model.eval()
    accumulator = ViewAccumulator(datamodule.num_classes)
    skipped: list[tuple[str, str]] = []
    fallbacks: list[tuple[str, str, str]] = []
    timings: list[tuple[int, float]] = []  # (views, seconds) of each forward
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    try:
        with torch.inference_mode():
            batches = tqdm(loader, total=len(loader), desc=f"evaluate {split}", unit="batch",
                           disable=not progress, dynamic_ncols=True)
            for batch in batches:
                skipped.extend(tuple(s) for s in batch["skipped"])
                fallbacks.extend(tuple(f) for f in batch.get("fallbacks", ()))
                if batch["video"].shape[0] == 0:  # only failures in this batch
                    continue
                video = batch["video"].to(device, non_blocking=True)
                logits, seconds = _timed_forward(model, video, autocast, device)
                timings.append((video.shape[0], seconds))
                accumulator.update(logits, batch["label"], batch["video_index"], batch["view_index"])
    finally:
        model.train(was_training)

    if len(accumulator) == 0:
        shown = "; ".join(f"{p} ({r})" for p, r in skipped[:5])
        raise RuntimeError(
            f"no video of {datamodule.data_dir}/{split}.csv could be read "
            f"({len(skipped)} failed): {shown}"
        )
    metrics = accumulator.compute(aggregate)
    accounting = video_list.account(metrics.views_per_video, skipped, views[0] * views[1])
    return EvaluationResult(
        model=backbone.model_name or type(backbone).__name__,
        reducer=getattr(getattr(backbone, "reducer", None), "name", "none"),
        split=split,
        views=views,
        aggregate=aggregate,
        clip_top1=metrics.clip_top1,
        clip_top5=metrics.clip_top5,
        video_top1=metrics.video_top1,
        video_top5=metrics.video_top5,
        topk=metrics.topk,
        gflops_per_view=cost.gflops,
        params_m=cost.params_m,
        clips_per_second=_clips_per_second(timings),
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
        decoder_fallbacks=video_list.fallbacks(fallbacks),
        per_class=[
            ClassAccuracy(name, top1, n)
            for name, top1, n in zip(datamodule.classes, metrics.per_class_top1, metrics.per_class_videos)
        ],
        data_dir=str(datamodule.data_dir),
        device=str(device),
        precision=precision,
        extra=dict(extra or {}),
    )


def find_backbone(model: nn.Module) -> nn.Module:
    """The video backbone inside ``model`` (itself, or its ``.model`` / ``.backbone``)."""
    for candidate in (model, getattr(model, "model", None), getattr(model, "backbone", None)):
        if isinstance(candidate, nn.Module) and all(
            hasattr(candidate, a) for a in ("in_chans", "num_frames", "img_size", "num_classes")
        ):
            return candidate
    raise TypeError(
        f"{type(model).__name__} is not a videotok backbone and holds none as .model or .backbone "
        "(need in_chans, num_frames, img_size, num_classes)"
    )


def eval_dataloader(datamodule: Any, split: str, views: tuple[int, int]):
    """The data module's loader for ``split`` with ``views``, leaving its own setting as it was
    (the dataset keeps the views it was built with)."""
    attribute = f"{split}_views"
    saved = getattr(datamodule, attribute)
    setattr(datamodule, attribute, tuple(views))
    try:
        return datamodule.test_dataloader() if split == "test" else datamodule.val_dataloader()
    finally:
        setattr(datamodule, attribute, saved)


def _check_compatible(backbone: nn.Module, datamodule: Any) -> None:
    """Fail before decoding anything when model and data cannot fit together."""
    problems = []
    if backbone.num_classes != datamodule.num_classes:
        problems.append(f"the model has {backbone.num_classes} classes, the data {datamodule.num_classes}")
    if backbone.num_frames != datamodule.num_frames:
        problems.append(f"the model takes {backbone.num_frames} frames, the data gives {datamodule.num_frames}")
    if backbone.img_size != datamodule.crop_size:
        problems.append(f"the model takes {backbone.img_size}px, the data crops {datamodule.crop_size}px")
    if problems:
        raise ValueError("model and data do not match: " + "; ".join(problems))


def _timed_forward(model: nn.Module, video: torch.Tensor, autocast, device: torch.device):
    """Logits and the seconds the forward took (waiting for the GPU to finish)."""
    _synchronize(device)
    start = time.perf_counter()
    with autocast:
        logits = model(video)
    _synchronize(device)
    return logits, time.perf_counter() - start


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clips_per_second(timings: list[tuple[int, float]]) -> float:
    """Views per second of forward time; the first batch is left out as warm-up when others exist."""
    timed = timings[1:] if len(timings) > 1 else timings
    seconds = sum(s for _, s in timed)
    return sum(n for n, _ in timed) / seconds if seconds > 0 else float("nan")
