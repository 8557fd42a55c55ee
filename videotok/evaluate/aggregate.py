"""Multi-view accuracy: clip level (each view scored alone) and video level (views averaged).

Evaluation cuts every video into ``clips x crops`` views. Each view's logits are recorded once
under its key ``(video_index, view_index)``; a key seen again (a retried batch, a repeated
sample) is dropped and counted, so every view weighs the same. Video-level scores average the
views of a video, either their softmax probabilities (the usual multi-view protocol) or their raw
logits; the two can disagree when one view is far more confident than the others. Plain torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Optional

import torch
from torch import Tensor

AGGREGATES = ("softmax", "logits")
"""How the views of a video are combined: mean of softmax probabilities, or mean of logits."""

def check_aggregate(aggregate: str) -> str:
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate={aggregate!r}: choose one of {', '.join(AGGREGATES)}")
    return aggregate


@dataclass
class ViewMetrics:
    """Accuracies in percent. ``topk`` is the k of the "top-5" numbers: min(5, num_classes)."""

    aggregate: str
    clip_top1: float
    clip_top5: float
    video_top1: float
    video_top5: float
    topk: int
    num_views: int
    num_videos: int
    duplicates: int  # records dropped because their (video_index, view_index) was already seen
    per_class_top1: list[Optional[float]]  # video-level, per label; None for a class with no video
    per_class_videos: list[int]
    views_per_video: dict[int, int] = field(default_factory=dict)  # video_index -> views scored


class ViewAccumulator:
    """Collects per-view logits; ``compute`` turns them into clip- and video-level metrics."""

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self._chunks: list[dict[str, Tensor]] = []

    def __len__(self) -> int:
        """Records held, duplicates included."""
        return sum(len(c["label"]) for c in self._chunks)

    def update(self, logits: Tensor, label: Tensor, video_index: Tensor, view_index: Tensor) -> None:
        """Record one batch: ``logits`` [B, num_classes], the others [B]. Kept on the CPU."""
        b = logits.shape[0]
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits must be [B, {self.num_classes}], got {list(logits.shape)}")
        for name, t in (("label", label), ("video_index", video_index), ("view_index", view_index)):
            if t.shape != (b,):
                raise ValueError(f"{name} must be [{b}] like the logits, got {list(t.shape)}")
        if b == 0:
            return
        self._chunks.append({
            "logits": logits.detach().float().cpu(),
            "label": label.detach().long().cpu(),
            "video_index": video_index.detach().long().cpu(),
            "view_index": view_index.detach().long().cpu(),
        })

    def records(self) -> dict[str, Tensor]:
        """Everything recorded, duplicates included: logits [N, C], label/video_index/view_index [N]."""
        if not self._chunks:
            empty = torch.empty(0, dtype=torch.long)
            return {"logits": torch.empty(0, self.num_classes), "label": empty,
                    "video_index": empty.clone(), "view_index": empty.clone()}
        return {k: torch.cat([c[k] for c in self._chunks]) for k in self._chunks[0]}

    def deduplicated(self) -> tuple[dict[str, Tensor], int]:
        """The records with each (video_index, view_index) once (its first record), and how
        many were dropped."""
        rec = self.records()
        n = len(rec["label"])
        if n == 0:
            return rec, 0
        if int(rec["view_index"].min()) < 0 or int(rec["video_index"].min()) < 0:
            raise ValueError("video_index and view_index must be >= 0")
        first = first_views(rec["video_index"], rec["view_index"])
        return {k: v[first] for k, v in rec.items()}, n - len(first)

    def compute(self, aggregate: str = "softmax", topk: int = 5) -> ViewMetrics:
        """Clip- and video-level top-1/top-k and per-class video-level top-1."""
        rec, duplicates = self.deduplicated()
        if len(rec["label"]) == 0:
            raise ValueError("no view was recorded: nothing to score")
        videos = video_records(rec["logits"], rec["label"], rec["video_index"], aggregate, topk)
        return videos.metrics(self.num_classes, duplicates)


@dataclass
class VideoRecords:
    """One row per video, all a metric needs: its views and how many were right at clip level, and
    its video-level prediction (the top-k classes of its aggregated views, best first, with their
    scores). Small enough to flush to disk as an evaluation goes and to gather across ranks."""

    aggregate: str
    video_index: Tensor  # [V] long
    label: Tensor  # [V] long
    views: Tensor  # [V] long, views scored
    clip_hit1: Tensor  # [V] long, views whose top-1 is the label
    clip_hitk: Tensor  # [V] long, views with the label in their top-k
    top_classes: Tensor  # [V, k] long
    top_scores: Tensor  # [V, k] float64, mean softmax or mean logit

    def __len__(self) -> int:
        return len(self.video_index)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def concat(cls, parts: "list[VideoRecords]", aggregate: str, k: int) -> "VideoRecords":
        """All `parts` in order; a video recorded twice keeps its first record."""
        tensors = [f.name for f in fields(cls) if f.name != "aggregate"]
        if not parts:
            return cls(aggregate, *(torch.empty((0, k) if name.startswith("top_") else (0,),
                                                 dtype=torch.float64 if name == "top_scores" else torch.long)
                                     for name in tensors))
        joined = {name: torch.cat([getattr(p, name) for p in parts]) for name in tensors}
        _, first = _first_occurrences(joined["video_index"])
        return cls(aggregate, **{name: value[first] for name, value in joined.items()})

    def in_order(self) -> "VideoRecords":
        """The records sorted by video index (the video list's order)."""
        order = self.video_index.argsort()
        return VideoRecords(self.aggregate, **{f.name: getattr(self, f.name)[order]
                                               for f in fields(self) if f.name != "aggregate"})

    def metrics(self, num_classes: int, duplicates: int = 0) -> ViewMetrics:
        """Clip- and video-level top-1/top-k and per-class video-level top-1 over these videos."""
        views = int(self.views.sum())
        video_hit1 = self.top_classes[:, 0] == self.label
        video_hitk = (self.top_classes == self.label[:, None]).any(dim=1)
        per_class_videos = torch.bincount(self.label, minlength=num_classes)
        per_class_hits = torch.bincount(self.label, weights=video_hit1.double(), minlength=num_classes)
        per_class = [
            100.0 * float(h) / int(n) if int(n) else None
            for h, n in zip(per_class_hits.tolist(), per_class_videos.tolist())
        ]
        return ViewMetrics(
            aggregate=self.aggregate,
            clip_top1=100.0 * int(self.clip_hit1.sum()) / views if views else math.nan,
            clip_top5=100.0 * int(self.clip_hitk.sum()) / views if views else math.nan,
            video_top1=_percent(video_hit1),
            video_top5=_percent(video_hitk),
            topk=self.top_classes.shape[1],
            num_views=views,
            num_videos=len(self),
            duplicates=duplicates,
            per_class_top1=per_class,
            per_class_videos=per_class_videos.tolist(),
            views_per_video=dict(zip(self.video_index.tolist(), self.views.tolist())),
        )


def video_records(logits: Tensor, label: Tensor, video_index: Tensor, aggregate: str = "softmax",
                  topk: int = 5) -> VideoRecords:
    """Views -> one record per video (videos in order of first appearance). ``logits`` [N, C];
    ``label``, ``video_index`` [N]; each view must be there once (see ``deduplicated``)."""
    check_aggregate(aggregate)
    k = min(topk, logits.shape[1])
    videos, inverse = torch.unique(video_index, return_inverse=True)  # [V], [N]
    num_videos = len(videos)
    scores = logits.double().softmax(dim=1) if aggregate == "softmax" else logits.double()
    views = torch.bincount(inverse, minlength=num_videos)  # [V]
    video_scores = torch.zeros(num_videos, logits.shape[1], dtype=torch.float64)
    video_scores.index_add_(0, inverse, scores)
    video_scores /= views[:, None]  # mean over each video's views, [V, C]
    video_label = torch.zeros(num_videos, dtype=torch.long).scatter_(0, inverse, label)
    mismatch = video_label[inverse] != label
    if mismatch.any():
        bad = int(video_index[mismatch][0])
        raise ValueError(f"video_index {bad} has views with different labels")
    _, clip_hit1, clip_hitk = _hits(logits, label, k)
    top = video_scores.topk(k, dim=1)
    _, order = _first_occurrences(video_index)
    order = inverse[order]  # videos by first appearance
    return VideoRecords(
        aggregate=aggregate,
        video_index=videos[order],
        label=video_label[order],
        views=views[order],
        clip_hit1=torch.bincount(inverse, weights=clip_hit1.double(), minlength=num_videos).long()[order],
        clip_hitk=torch.bincount(inverse, weights=clip_hitk.double(), minlength=num_videos).long()[order],
        top_classes=top.indices[order],
        top_scores=top.values[order],
    )


def first_views(video_index: Tensor, view_index: Tensor) -> Tensor:
    """The positions of the first record of each (video_index, view_index), in recording order
    (a view recorded again is a duplicate)."""
    key = video_index * (int(view_index.max()) + 1) + view_index
    _, first = _first_occurrences(key)
    return first


def _first_occurrences(keys: Tensor) -> tuple[Tensor, Tensor]:
    """The unique ``keys`` and, for each, the position of its first occurrence, in recording order."""
    n = len(keys)
    unique, inverse = torch.unique(keys, return_inverse=True)
    first = torch.full((len(unique),), n, dtype=torch.long).scatter_reduce(0, inverse, torch.arange(n), "amin")
    first = first.sort().values
    return keys[first], first


def _hits(scores: Tensor, label: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """The top-k classes [N, k] (best first) of ``scores`` [N, C], top-1 and top-k correctness [N]."""
    top = scores.topk(k, dim=1).indices
    return top, top[:, 0] == label, (top == label[:, None]).any(dim=1)


def _percent(hits: Tensor) -> float:
    return 100.0 * float(hits.double().mean()) if len(hits) else math.nan
