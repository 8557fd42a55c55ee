"""``EvaluationResult``: one evaluation's numbers, as JSON for files and as a terminal table."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Optional

from videotok.evaluate.video_list import FallbackVideo, IncompleteVideo, UnreadableVideo


@dataclass(frozen=True)
class ClassAccuracy:
    name: str
    top1: Optional[float]  # video-level, percent; None when the split has no video of the class
    videos: int


@dataclass(frozen=True)
class VideoPrediction:
    """One video's video-level prediction: its top-k classes, best first, with their scores (mean
    softmax or mean logit over its views), and how many of its views were right at top-1."""

    path: str
    label: int
    views: int
    clip_top1_hits: int
    classes: list[int]
    scores: list[float]


@dataclass
class EvaluationResult:
    """Accuracies are percentages. ``clip_*``: each view alone; ``video_*``: the views of a
    video aggregated (``aggregate``). ``topk`` is the k of the top-5 numbers (min(5, classes))."""

    model: str
    reducer: str
    split: str
    views: tuple[int, int]  # (temporal clips, spatial crops)
    aggregate: str
    clip_top1: float
    clip_top5: float
    video_top1: float
    video_top5: float
    topk: int
    gflops_per_view: float  # mean over the views evaluated (the token counts each one kept)
    params_m: float
    clips_per_second: float  # model forward only, data loading excluded
    videos_expected: int
    videos_evaluated: int
    views_evaluated: int
    duplicate_views: int
    video_list_hash: str  # first 12 hex digits of video_list_sha256
    video_list_sha256: str
    unreadable: list[UnreadableVideo] = field(default_factory=list)
    incomplete: list[IncompleteVideo] = field(default_factory=list)
    unaccounted: list[str] = field(default_factory=list)
    decoder: str = ""  # data.decoder: what read every video not listed in decoder_fallbacks
    decoder_fallbacks: list[FallbackVideo] = field(default_factory=list)  # read by data.fallback_decoder
    per_class: list[ClassAccuracy] = field(default_factory=list)
    data_dir: str = ""
    device: str = "cpu"
    precision: str = "32"
    gflops_per_view_blank: float = math.nan  # counted on a blank clip, as `videotok flops` prints
    model_seconds: float = math.nan  # forward time over every view, summed over devices
    videos_per_second: float = math.nan  # videos evaluated over model_seconds
    timing: dict[str, Any] = field(default_factory=dict)  # the pass: wall, waiting for data, runs, processes
    predictions: list[VideoPrediction] = field(default_factory=list)  # per video, in video-list order
    # 95 % bootstrap intervals over videos (percent; videotok.evaluate.statistics), from `predictions`
    clip_top1_low: float = math.nan
    clip_top1_high: float = math.nan
    video_top1_low: float = math.nan
    video_top1_high: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. config and checkpoint paths

    @property
    def views_per_video(self) -> int:
        return self.views[0] * self.views[1]

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["views"] = list(self.views)
        return data

    def to_json(self, indent: int = 2) -> str:
        return json.dumps(_finite(self.to_dict()), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvaluationResult":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["views"] = tuple(values["views"])
        for name in _FLOAT_FIELDS:  # null in JSON was a NaN
            if name in values and values[name] is None:
                values[name] = math.nan
        values["unreadable"] = [UnreadableVideo(**u) for u in values.get("unreadable", [])]
        values["incomplete"] = [IncompleteVideo(**u) for u in values.get("incomplete", [])]
        values["decoder_fallbacks"] = [FallbackVideo(**f) for f in values.get("decoder_fallbacks", [])]
        values["per_class"] = [ClassAccuracy(**c) for c in values.get("per_class", [])]
        values["predictions"] = [VideoPrediction(**p) for p in values.get("predictions", [])]
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> "EvaluationResult":
        return cls.from_dict(json.loads(text))

    # -- terminal ----------------------------------------------------------------------------
    def to_table(self, per_class: bool = False) -> str:
        """An aligned two-column summary; every video not evaluated is listed by path."""
        k = "top-5" if self.topk == 5 else f"top-{self.topk} (of {self.topk} classes)"
        clips, crops = self.views
        rows = [
            ("clip top-1", _pct(self.clip_top1) + _interval(self.clip_top1_low, self.clip_top1_high)),
            (f"clip {k}", _pct(self.clip_top5)),
            (f"video top-1 ({self.aggregate})",
             _pct(self.video_top1) + _interval(self.video_top1_low, self.video_top1_high)),
            (f"video {k} ({self.aggregate})", _pct(self.video_top5)),
            ("GFLOPs per view", f"{self.gflops_per_view:.3f}" + self._blank_note()),
            ("params", f"{self.params_m:.2f} M"),
            ("clips/s (forward only)", f"{self.clips_per_second:.1f}"),
            *self._time_rows(),
            ("videos evaluated", f"{self.videos_evaluated} / {self.videos_expected}"),
            ("views evaluated", f"{self.views_evaluated} ({clips} clips x {crops} crops per video)"),
            ("unreadable videos", str(len(self.unreadable))),
        ]
        if self.decoder_fallbacks:
            used = ", ".join(sorted({f.decoder for f in self.decoder_fallbacks}))
            rows.append((f"read by fallback ({used})",
                         f"{len(self.decoder_fallbacks)} (the others by {self.decoder or 'data.decoder'})"))
        if self.incomplete:
            rows.append(("videos with missing views", str(len(self.incomplete))))
        if self.unaccounted:
            rows.append(("videos unaccounted for", str(len(self.unaccounted))))
        if self.duplicate_views:
            rows.append(("duplicate views dropped", str(self.duplicate_views)))
        rows.append(("video list", f"{self.video_list_hash} ({self.videos_expected} videos, sha256)"))
        if self.extra.get("class_restriction"):  # a checkpoint of more classes, scored on the data's
            rows.append(("classes", str(self.extra["class_restriction"])))

        title = (f"{self.model} + reducer {self.reducer} on {self.split}"
                 f" ({self.device}, precision {self.precision})")
        lines = [title, *_align(rows)]
        for u in self.unreadable:
            lines.append(f"  unreadable: {u.path}: {u.reason}")
        for f in self.decoder_fallbacks:
            lines.append(f"  read by {f.decoder}: {f.path}: {f.reason}")
        for v in self.incomplete:
            lines.append(f"  missing views: {v.path}: {v.views} of {v.expected}")
        for path in self.unaccounted:
            lines.append(f"  unaccounted for: {path}")
        if per_class and self.per_class:
            lines.append(f"per-class video top-1 ({self.aggregate}):")
            lines += _align([
                (c.name, "   n/a" if c.top1 is None else f"{_pct(c.top1)}  ({c.videos} videos)")
                for c in self.per_class
            ])
        return "\n".join(lines)


    def gflops_differ(self) -> bool:
        """Whether the views' own token counts cost other than the blank clip (content-aware cost)."""
        blank = self.gflops_per_view_blank
        return math.isfinite(blank) and not math.isclose(self.gflops_per_view, blank, rel_tol=1e-6)

    def _blank_note(self) -> str:
        return f" (mean of the views; blank clip {self.gflops_per_view_blank:.3f})" if self.gflops_differ() else ""

    def _time_rows(self) -> list[tuple[str, str]]:
        if not self.timing:
            return []
        wall, wait = self.timing.get("wall_seconds"), self.timing.get("wait_seconds")
        runs = self.timing.get("runs", 1)
        resumed = f", {runs} runs (resumed)" if runs > 1 else ""
        return [("wall time", f"{wall:.1f} s ({wait:.1f} s waiting for decoded clips{resumed})"),
                ("model time", f"{self.model_seconds:.1f} s ({self.videos_per_second:.1f} videos/s)")]


_FLOAT_FIELDS = ("clip_top1", "clip_top5", "video_top1", "video_top5", "gflops_per_view", "params_m",
                 "clips_per_second", "gflops_per_view_blank", "model_seconds", "videos_per_second",
                 "clip_top1_low", "clip_top1_high", "video_top1_low", "video_top1_high")


def _pct(value: float) -> str:
    return f"{value:6.2f} %"


def _interval(low: float, high: float) -> str:
    """`  [88.89, 98.61] (95 %, bootstrap over videos)`, or nothing when not computed."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f"  [{low:.2f}, {high:.2f}] (95 %, bootstrap over videos)"


def _align(rows: list[tuple[str, str]], indent: str = "  ") -> list[str]:
    width = max((len(name) for name, _ in rows), default=0)
    return [f"{indent}{name:<{width}}  {value}" for name, value in rows]


def _finite(value: Any) -> Any:
    """NaN/inf become null: strict JSON has no spelling for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
