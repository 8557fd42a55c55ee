"""How far a result's accuracy can be trusted: bootstrap intervals over videos and paired tests.

A test split is a sample of videos, so an accuracy has an uncertainty: with 72 videos one video
is 1.4 points; on Kinetics' 19,881 a difference of a few tenths may or may not be real. Everything
here is computed from the per-video records a pass keeps (`EvaluationResult.predictions`), so a
resumed or multi-process pass, or a result read back from its JSON, gives the same figures:

- the records are sorted by video path before resampling, so their order does not matter;
- the resamples come from a generator with a fixed seed (`Bootstrap.seed`), so one split gets the
  same resampled videos for every row, and the baseline's own interval is the same in every pairing.

Intervals are percentile bootstrap intervals over videos (a cluster bootstrap: a resampled video
carries all its views, so the clip-level interval accounts for the views of one video agreeing).
The paired difference resamples the same videos for both rows; the exact McNemar test compares the
video-level decisions (right/wrong at top-1) on the videos both rows scored: under "no difference"
each of the b + c discordant videos is as likely to favour either row, so the two-sided p-value is
twice the binomial(b + c, 1/2) tail at min(b, c), capped at 1.

Vectorised: one resample is a row of draw counts per video, and every statistic is a ratio of
(counts @ per-video columns), so 2,000 resamples of 20,000 videos are a few matrix products
(`benchmarks/bootstrap.py`). Plain torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

RESAMPLES = 2000
SEED = 0
CONFIDENCE = 0.95
SIGNIFICANCE = 0.05  # a row differs from the baseline beyond noise when its McNemar p-value is below this
_CHUNK_DRAWS = 1 << 22  # draws (resamples x videos) per chunk: bounds memory at 20,000 videos and more


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are computed: resamples, generator seed, coverage (e.g. 0.95)."""

    resamples: int = RESAMPLES
    seed: int = SEED
    confidence: float = CONFIDENCE

    def describe(self) -> dict:
        return {"method": "percentile bootstrap over videos (paired: the same resampled videos for both rows)",
                "resamples": self.resamples, "seed": self.seed, "confidence": self.confidence,
                "test": "exact McNemar (binomial on the discordant videos), two-sided",
                "significance": SIGNIFICANCE}


@dataclass(frozen=True)
class Interval:
    """A bootstrap interval, in the statistic's units (percent, or points for a difference)."""

    low: float
    high: float

    @classmethod
    def unknown(cls) -> "Interval":
        return cls(math.nan, math.nan)

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class VideoOutcomes:
    """Per video, sorted by path: the video-level top-1 decisions that were right (0/1; summed over
    seeds when pooled), how many decisions there were (1, or the number of seeds), and the clip-level
    hits over how many views."""

    paths: tuple[str, ...]
    video_hits: Tensor  # [V] long
    decisions: Tensor  # [V] long
    clip_hits: Tensor  # [V] long
    views: Tensor  # [V] long

    def __len__(self) -> int:
        return len(self.paths)

    @classmethod
    def from_predictions(cls, predictions: Sequence) -> "VideoOutcomes":
        """From `VideoPrediction`s (or dicts of their fields), in any order. A path the video list
        holds more than once is told apart by its repeat (`path#2`, in the order given)."""
        seen: dict[str, int] = {}
        keyed = []
        for p in predictions:
            path = _field(p, "path")
            seen[path] = seen.get(path, 0) + 1
            keyed.append((path if seen[path] == 1 else f"{path}#{seen[path]}", p))
        rows = sorted((key, int(_field(p, "label")), list(_field(p, "classes")), int(_field(p, "clip_top1_hits")),
                       int(_field(p, "views"))) for key, p in keyed)
        paths = tuple(r[0] for r in rows)
        hits = torch.tensor([int(bool(r[2]) and r[2][0] == r[1]) for r in rows], dtype=torch.long)
        return cls(paths, hits, torch.ones(len(rows), dtype=torch.long),
                   torch.tensor([r[3] for r in rows], dtype=torch.long),
                   torch.tensor([r[4] for r in rows], dtype=torch.long))

    @classmethod
    def pooled(cls, seeds: Sequence["VideoOutcomes"]) -> "VideoOutcomes":
        """Several seeds' outcomes on the videos all of them scored, summed per video: a resampled
        video carries every seed's decisions (the interval of the mean over seeds)."""
        if not seeds:
            raise ValueError("no outcomes to pool")
        if len(seeds) == 1:
            return seeds[0]
        common = set(seeds[0].paths).intersection(*(s.paths for s in seeds[1:]))
        parts = [s.restricted(common) for s in seeds]
        return cls(parts[0].paths, *(sum(getattr(p, name) for p in parts)
                                     for name in ("video_hits", "decisions", "clip_hits", "views")))

    def restricted(self, paths: set[str] | frozenset[str]) -> "VideoOutcomes":
        """The videos among `paths`, still sorted."""
        if len(paths) >= len(self.paths) and frozenset(paths).issuperset(self.paths):
            return self
        keep = torch.tensor([p in paths for p in self.paths], dtype=torch.bool)
        return VideoOutcomes(tuple(p for p in self.paths if p in paths), self.video_hits[keep],
                             self.decisions[keep], self.clip_hits[keep], self.views[keep])

    def video_top1(self) -> float:
        return _ratio(self.video_hits.sum(), self.decisions.sum())

    def clip_top1(self) -> float:
        return _ratio(self.clip_hits.sum(), self.views.sum())


@dataclass(frozen=True)
class AccuracyIntervals:
    clip_top1: Interval
    video_top1: Interval


@dataclass(frozen=True)
class PairedComparison:
    """A row against the baseline on the videos both scored (differences in points, row - baseline)."""

    videos: int
    delta_clip_top1: float
    delta_clip_top1_interval: Interval
    delta_video_top1: float
    delta_video_top1_interval: Interval
    baseline_only: int  # videos the baseline got right and the row wrong (b), summed over seeds
    row_only: int  # videos the row got right and the baseline wrong (c), summed over seeds
    mcnemar_p: float

    @property
    def differs(self) -> bool:
        """Whether the video-level decisions differ beyond noise (McNemar p below SIGNIFICANCE)."""
        return math.isfinite(self.mcnemar_p) and self.mcnemar_p < SIGNIFICANCE


def accuracy_intervals(outcomes: VideoOutcomes, bootstrap: Bootstrap = Bootstrap()) -> AccuracyIntervals:
    """Clip and video top-1 intervals (percent), resampling videos."""
    if len(outcomes) == 0:
        return AccuracyIntervals(Interval.unknown(), Interval.unknown())
    return _accuracy(resampled_sums(_columns(outcomes), bootstrap), bootstrap)


def accuracy_intervals_of(results: Sequence[VideoOutcomes],
                          bootstrap: Bootstrap = Bootstrap()) -> list[AccuracyIntervals]:
    """`accuracy_intervals` of each of `results`; those on the same videos share one set of resamples
    (the rows of one pass: one matrix product for all)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, outcomes in enumerate(results):
        groups.setdefault(outcomes.paths, []).append(i)
    out: dict[int, AccuracyIntervals] = {}
    for paths, members in groups.items():
        if not paths:
            out.update({i: accuracy_intervals(results[i], bootstrap) for i in members})
            continue
        sums = resampled_sums(torch.cat([_columns(results[i]) for i in members], dim=1), bootstrap)  # [R, 4 per row]
        out.update({i: _accuracy(sums[:, 4 * k:4 * k + 4], bootstrap) for k, i in enumerate(members)})
    return [out[i] for i in range(len(results))]


@dataclass(frozen=True)
class RowStatistics:
    """A row of a comparison: its own intervals (over its videos, seeds pooled) and against the baseline."""

    accuracy: AccuracyIntervals
    paired: PairedComparison


def comparison_statistics(baselines: Sequence[VideoOutcomes], rows: dict[str, Sequence[VideoOutcomes]],
                          bootstrap: Bootstrap = Bootstrap()) -> dict[str, RowStatistics]:
    """Every row against the baseline, one outcome per seed in `baselines` and in each of `rows`
    (same order: the row of seed s against the baseline of seed s). Rows scored on the same videos
    share one set of resamples (one matrix product for all of them), which is what keeps a
    comparison of many rows over 20,000 videos within seconds."""
    groups: dict[frozenset[str], list[str]] = {}
    for name, seeds in rows.items():
        if len(seeds) != len(baselines) or not seeds:
            raise ValueError(f"row {name}: {len(seeds)} outcomes for {len(baselines)} baselines (one per seed)")
        common = frozenset(baselines[0].paths).intersection(*(o.paths for o in (*baselines[1:], *seeds)))
        groups.setdefault(common, []).append(name)
    out: dict[str, RowStatistics] = {}
    for common, names in groups.items():
        base = VideoOutcomes.pooled([o.restricted(common) for o in baselines]) if common else None
        pooled = {name: VideoOutcomes.pooled([o.restricted(common) for o in rows[name]]) for name in names}
        sums = (resampled_sums(torch.cat([_columns(base)] + [_columns(pooled[n]) for n in names], dim=1), bootstrap)
                if common else None)  # [R, 4 (baseline) + 4 per row]
        for i, name in enumerate(names, start=1):
            own = VideoOutcomes.pooled(list(rows[name]))
            if sums is not None and own.paths == base.paths:
                accuracy = _accuracy(sums[:, 4 * i:4 * i + 4], bootstrap)
            else:
                accuracy = accuracy_intervals(own, bootstrap)
            out[name] = RowStatistics(accuracy, _paired(rows[name], baselines, common, base, pooled[name],
                                                        sums, i, bootstrap))
    return {name: out[name] for name in rows}


def paired_comparison(rows: Sequence[VideoOutcomes], baselines: Sequence[VideoOutcomes],
                      bootstrap: Bootstrap = Bootstrap()) -> PairedComparison:
    """One row against the baseline (see `comparison_statistics`)."""
    return comparison_statistics(baselines, {"row": rows}, bootstrap)["row"].paired


def _columns(outcomes: VideoOutcomes) -> Tensor:
    """[V, 4]: clip hits, views, video hits, decisions."""
    return torch.stack([outcomes.clip_hits, outcomes.views, outcomes.video_hits, outcomes.decisions], dim=1)


def _accuracy(sums: Tensor, bootstrap: Bootstrap) -> AccuracyIntervals:
    """Intervals from one outcome's resampled `_columns` sums [R, 4]."""
    return AccuracyIntervals(_interval(100.0 * sums[:, 0] / sums[:, 1], bootstrap),
                             _interval(100.0 * sums[:, 2] / sums[:, 3], bootstrap))


def _paired(rows: Sequence[VideoOutcomes], baselines: Sequence[VideoOutcomes], common: frozenset[str],
            base: Optional[VideoOutcomes], row: Optional[VideoOutcomes], sums: Optional[Tensor], i: int,
            bootstrap: Bootstrap) -> PairedComparison:
    """Row i of the resampled sums against the baseline's (columns 0-3), and the per-seed McNemar tests."""
    if not common:
        unknown = Interval.unknown()
        return PairedComparison(0, math.nan, unknown, math.nan, unknown, 0, 0, math.nan)
    a, b = sums[:, :4], sums[:, 4 * i:4 * i + 4]
    clip = 100.0 * (b[:, 0] / b[:, 1] - a[:, 0] / a[:, 1])
    video = 100.0 * (b[:, 2] / b[:, 3] - a[:, 2] / a[:, 3])
    discordant = [_discordant(r.restricted(common), s.restricted(common)) for r, s in zip(rows, baselines)]
    p = largest_p([mcnemar_exact(only_base, only_row) for only_base, only_row in discordant])
    return PairedComparison(len(common), row.clip_top1() - base.clip_top1(), _interval(clip, bootstrap),
                            row.video_top1() - base.video_top1(), _interval(video, bootstrap),
                            sum(d[0] for d in discordant), sum(d[1] for d in discordant), p)


def _discordant(row: VideoOutcomes, baseline: VideoOutcomes) -> tuple[int, int]:
    """(videos right for the baseline only, right for the row only), one seed, the same videos."""
    a, b = baseline.video_hits.bool(), row.video_hits.bool()
    return int((a & ~b).sum()), int((b & ~a).sum())


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for `b` and `c` discordant pairs: 2 P(X <= min(b, c)) with
    X ~ Binomial(b + c, 1/2), capped at 1 (1 when there is no discordant pair). Exact integer sums."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n, k = b + c, min(b, c)
    if n == 0:
        return 1.0
    term, tail = 1, 1  # C(n, 0)
    for i in range(k):
        term = term * (n - i) // (i + 1)  # C(n, i + 1), exact
        tail += term
    return min(1.0, 2 * tail / 2**n)


def largest_p(p_values: Sequence[float]) -> float:
    """Several seeds' McNemar p-values as one: the largest, so a row differs beyond noise only when it
    does under every seed (the seeds share their test videos, so their tests are not independent)."""
    finite = [p for p in p_values if math.isfinite(p)]
    return max(finite) if finite else math.nan


def resampled_sums(columns: Tensor, bootstrap: Bootstrap = Bootstrap()) -> Tensor:
    """Per resample, the column sums over a resample of the rows (videos) drawn with replacement:
    [V, K] -> [R, K] float64. The draws depend only on V and the seed."""
    v, k = columns.shape
    generator = torch.Generator().manual_seed(bootstrap.seed)
    values = columns.double()
    chunk = max(1, _CHUNK_DRAWS // max(v, 1))
    out = torch.empty(bootstrap.resamples, k, dtype=torch.float64)
    ones = torch.ones(1, dtype=torch.float64).expand(min(chunk, bootstrap.resamples), v)
    counts = torch.empty(min(chunk, bootstrap.resamples), v, dtype=torch.float64)
    for start in range(0, bootstrap.resamples, chunk):
        n = min(chunk, bootstrap.resamples - start)
        draws = torch.randint(v, (n, v), generator=generator)  # [n, V] video indices
        counts[:n].zero_().scatter_add_(1, draws, ones[:n])  # [n, V] times each video was drawn
        out[start:start + n] = counts[:n] @ values
    return out


def _interval(samples: Tensor, bootstrap: Bootstrap) -> Interval:
    tail = (1.0 - bootstrap.confidence) / 2
    low, high = torch.quantile(samples, torch.tensor([tail, 1.0 - tail], dtype=samples.dtype)).tolist()
    return Interval(low, high)


def _ratio(num: Tensor, den: Tensor) -> float:
    return 100.0 * float(num) / float(den) if int(den) else math.nan


def _field(prediction, name: str):
    return prediction[name] if isinstance(prediction, dict) else getattr(prediction, name)
