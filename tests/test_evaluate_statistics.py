"""The uncertainty of a result: bootstrap intervals over videos, the paired difference and the exact
McNemar test, checked against hand-computed cases and their properties."""
from __future__ import annotations

import math
import random

import pytest
import torch

from videotok.evaluate.result import EvaluationResult, VideoPrediction
from videotok.evaluate.statistics import (
    Bootstrap,
    VideoOutcomes,
    accuracy_intervals,
    accuracy_intervals_of,
    comparison_statistics,
    largest_p,
    mcnemar_exact,
    paired_comparison,
    resampled_sums,
)


def predictions(right: list[bool], clip_hits: list[int] | None = None, views: int = 3,
                prefix: str = "v") -> list[VideoPrediction]:
    """One video per entry of `right` (label 0; top class 0 when right, else 1)."""
    clip_hits = clip_hits if clip_hits is not None else [views if r else 0 for r in right]
    return [VideoPrediction(f"{prefix}{i:04d}.mp4", 0, views, hits, [0 if r else 1, 2], [0.9, 0.1])
            for i, (r, hits) in enumerate(zip(right, clip_hits))]


def outcomes(right: list[bool], clip_hits: list[int] | None = None, views: int = 3) -> VideoOutcomes:
    return VideoOutcomes.from_predictions(predictions(right, clip_hits, views))


# -- McNemar ------------------------------------------------------------------------------------

def test_mcnemar_exact_against_the_binomial_by_hand():
    # b=1, c=6: n=7 discordant videos; P(X <= 1) for X ~ Bin(7, 1/2) = (C(7,0) + C(7,1)) / 2^7 = 8/128;
    # two-sided: 2 * 8/128 = 0.125.
    assert mcnemar_exact(1, 6) == 0.125 and mcnemar_exact(6, 1) == 0.125
    assert mcnemar_exact(0, 5) == 2 / 32  # 0.0625: five to none is not yet beyond noise at 0.05
    assert mcnemar_exact(0, 6) == 2 / 64
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0  # capped at 1
    b, c = 40, 70  # against a direct sum of math.comb
    assert mcnemar_exact(b, c) == pytest.approx(2 * sum(math.comb(110, k) for k in range(41)) / 2**110, rel=1e-12)
    assert 0.0 < mcnemar_exact(9000, 9400) < 0.05 < mcnemar_exact(9000, 9100)  # Kinetics-sized counts stay exact
    with pytest.raises(ValueError, match="discordant"):
        mcnemar_exact(-1, 2)
    assert largest_p([0.01, 0.2, math.nan]) == 0.2 and math.isnan(largest_p([]))


# -- bootstrap ------------------------------------------------------------------------------------

def test_degenerate_cases_have_the_known_interval():
    every = accuracy_intervals(outcomes([True] * 30))
    assert (every.video_top1.low, every.video_top1.high) == (100.0, 100.0)
    assert (every.clip_top1.low, every.clip_top1.high) == (100.0, 100.0)
    none = accuracy_intervals(outcomes([False] * 30))
    assert (none.video_top1.low, none.video_top1.high) == (0.0, 0.0)
    # Every video has 2 of its 3 views right: resampling videos (each carrying its views) cannot move
    # clip top-1 off 2/3, where a bootstrap over views would spread it.
    same = accuracy_intervals(outcomes([True] * 40, clip_hits=[2] * 40))
    assert same.clip_top1.low == pytest.approx(200 / 3) and same.clip_top1.high == pytest.approx(200 / 3)
    # A row against itself: no difference in any resample, p = 1.
    half = outcomes([i % 2 == 0 for i in range(50)])
    paired = paired_comparison([half], [half])
    assert (paired.delta_video_top1_interval.low, paired.delta_video_top1_interval.high) == (0.0, 0.0)
    assert paired.mcnemar_p == 1.0 and not paired.differs and paired.videos == 50
    empty = accuracy_intervals(VideoOutcomes.from_predictions([]))
    assert math.isnan(empty.video_top1.low)


def test_paired_figures_on_a_hand_made_split():
    # 10 videos: the baseline alone right on video 0 (b=1), the row alone right on videos 1-6 (c=6),
    # both right on 7, both wrong on 8 and 9.
    baseline = outcomes([True, False, False, False, False, False, False, True, False, False])
    row = outcomes([False, True, True, True, True, True, True, True, False, False])
    paired = paired_comparison([row], [baseline])
    assert (paired.baseline_only, paired.row_only, paired.mcnemar_p) == (1, 6, 0.125)
    assert not paired.differs  # 0.125: six to one is within noise
    assert paired.delta_video_top1 == pytest.approx(50.0)  # 70 % - 20 %
    assert paired.delta_video_top1_interval.contains(50.0)
    assert paired.delta_video_top1_interval.low > 0.0  # the paired interval is narrower than the unpaired


def test_interval_properties_width_order_and_seed():
    rng = random.Random(0)
    right = [rng.random() < 0.5 for _ in range(400)]
    rows = predictions(right)
    a = accuracy_intervals(VideoOutcomes.from_predictions(rows))
    point = 100.0 * sum(right) / len(right)
    assert a.video_top1.low < point < a.video_top1.high
    # about 2 x 1.96 x sqrt(p (1 - p) / n) = 9.8 points at p = 0.5, n = 400
    assert 8.5 < a.video_top1.high - a.video_top1.low < 11.0
    # The records' order does not matter (sorted by path), and the seed is fixed.
    shuffled = rows[:]
    rng.shuffle(shuffled)
    assert accuracy_intervals(VideoOutcomes.from_predictions(shuffled)) == a
    assert accuracy_intervals(VideoOutcomes.from_predictions(rows), Bootstrap(seed=1)) != a
    # More videos, narrower (1/sqrt(n)).
    wide = accuracy_intervals(outcomes(right[:100]))
    assert wide.video_top1.high - wide.video_top1.low > 1.6 * (a.video_top1.high - a.video_top1.low)


def test_resamples_draw_videos_with_replacement():
    columns = torch.arange(5, dtype=torch.long)[:, None].expand(5, 2)  # [V=5, 2]
    sums = resampled_sums(columns, Bootstrap(resamples=300))
    assert sums.shape == (300, 2) and torch.equal(sums[:, 0], sums[:, 1])
    assert sums.min() >= 0 and sums.max() <= 20 and len(sums[:, 0].unique()) > 5
    assert torch.equal(sums, resampled_sums(columns, Bootstrap(resamples=300)))  # fixed seed


def test_seeds_pool_per_video_and_test_each_seed():
    one = outcomes([i % 3 != 0 for i in range(60)])
    # Two identical seeds: the same intervals as one (every ratio is unchanged by the doubling).
    assert accuracy_intervals(VideoOutcomes.pooled([one, one])) == accuracy_intervals(one)
    base = [outcomes([True] * 20), outcomes([True] * 19 + [False])]
    row = [outcomes([False] * 3 + [True] * 17), outcomes([True] * 20)]
    stats = comparison_statistics(base, {"baseline": base, "row": row})
    paired = stats["row"].paired
    # seed 0: b=3, c=0 (p = 0.25); seed 1: b=0, c=1 (p = 1): discordant counts add, p is the largest
    assert (paired.baseline_only, paired.row_only, paired.mcnemar_p) == (3, 1, 1.0)
    assert paired.delta_video_top1 == pytest.approx((37 / 40 - 39 / 40) * 100)
    assert stats["baseline"].paired.mcnemar_p == 1.0
    # A row scored on fewer videos is paired on the videos both scored.
    fewer = VideoOutcomes.from_predictions(predictions([True] * 20)[:15])
    assert paired_comparison([fewer], [base[0]]).videos == 15


def test_evaluation_result_keeps_its_intervals_through_json():
    rows = predictions([i % 4 != 0 for i in range(40)], clip_hits=[2] * 40)
    a = accuracy_intervals(VideoOutcomes.from_predictions(rows))
    result = EvaluationResult(
        model="m", reducer="none", split="test", views=(1, 3), aggregate="softmax", clip_top1=66.7, clip_top5=100.0,
        video_top1=75.0, video_top5=100.0, topk=5, gflops_per_view=1.0, params_m=1.0, clips_per_second=1.0,
        videos_expected=40, videos_evaluated=40, views_evaluated=120, duplicate_views=0, video_list_hash="h",
        video_list_sha256="h", predictions=rows, video_top1_low=a.video_top1.low, video_top1_high=a.video_top1.high)
    back = EvaluationResult.from_json(result.to_json())
    assert (back.video_top1_low, back.video_top1_high) == (a.video_top1.low, a.video_top1.high)
    assert math.isnan(back.clip_top1_low)  # not computed: null in JSON, NaN again
    assert accuracy_intervals(VideoOutcomes.from_predictions([p.__dict__ for p in back.predictions])) == a
    assert f"[{a.video_top1.low:.2f}, {a.video_top1.high:.2f}] (95 %" in back.to_table()


def test_intervals_of_many_results_are_each_ones_own():
    a = outcomes([i % 3 != 0 for i in range(50)])
    b = outcomes([i % 5 != 0 for i in range(50)])
    c = VideoOutcomes.from_predictions(predictions([True, False] * 10, prefix="w"))  # other videos
    assert accuracy_intervals_of([a, b, c]) == [accuracy_intervals(a), accuracy_intervals(b), accuracy_intervals(c)]
