"""The comparison report on hand-made rows (no training): the Pareto front, the per-class changes
against the baseline, both plots, and rows with values that were not measured."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from videotok.compare.pareto import pareto_front
from videotok.compare.per_class import ClassChange, class_changes, markdown_changes, most_changed
from videotok.compare.report import (
    GFLOPS_PLOT_FILE,
    SPEED_PLOT_FILE,
    markdown_report,
    table_rows,
    text_table,
    write_outputs,
)
from videotok.compare.runner import RowResult
from videotok.compare.settings import Strategy
from videotok.evaluate.result import ClassAccuracy, EvaluationResult

CLASSES = ("blue_down", "blue_up", "green_down", "green_up", "red_down", "red_up")
PNG = b"\x89PNG\r\n\x1a\n"


def result(video_top1: float, gflops: float, clips_per_second: float,
           per_class: dict[str, float | None] | None = None) -> EvaluationResult:
    classes = [ClassAccuracy(name, top1, 12 if top1 is not None else 0) for name, top1 in (per_class or {}).items()]
    return EvaluationResult(
        model="timesformer_tiny", reducer="none", split="test", views=(2, 3), aggregate="softmax",
        clip_top1=video_top1, clip_top5=100.0, video_top1=video_top1, video_top5=100.0, topk=5,
        gflops_per_view=gflops, params_m=1.1, clips_per_second=clips_per_second, videos_expected=72,
        videos_evaluated=72, views_evaluated=432, duplicate_views=0, video_list_hash="abc123def456",
        video_list_sha256="abc123def456" + "0" * 52, per_class=classes, data_dir="data/synthetic",
        extra={"machine": "test machine"},
    )


def row(name: str, reducer: str, res: EvaluationResult, adds_parameters: bool = False) -> RowResult:
    return RowResult(name, Strategy(name, reducer, {"r": 8}, adds_parameters), res, loaded=False)


def per_class(*values: float | None) -> dict[str, float | None]:
    return dict(zip(CLASSES, values))


# -- Pareto front -------------------------------------------------------------------------------

def test_pareto_front_on_a_known_table():
    #            cheap  best   same cost, same acc,  tie of  top   n/a   n/a    beaten
    #                          less acc   more cost  cheap   acc   cost  acc    by top
    costs = [1.0, 2.0, 2.0, 3.0, 1.0, 4.0, math.nan, 0.5, 5.0]
    accs = [80.0, 90.0, 85.0, 90.0, 80.0, 95.0, 99.0, math.nan, 94.0]
    assert pareto_front(costs, accs) == [True, True, False, False, True, True, False, False, False]
    # Speed: higher is better; equal accuracy keeps only the fastest, equal speed only the most accurate.
    speeds = [100.0, 200.0, 150.0, 150.0, 90.0, math.inf]
    accs = [90.0, 80.0, 85.0, 84.0, 90.0, 99.0]
    assert pareto_front(speeds, accs, lower_cost_is_better=False) == [True, True, True, False, False, False]
    assert pareto_front([], []) == []
    with pytest.raises(ValueError, match="2 costs but 1 accuracies"):
        pareto_front([1.0, 2.0], [50.0])


def test_table_rows_flag_the_fronts_the_baseline_included():
    rows = [
        RowResult("baseline", None, result(100.0, 0.07, 300.0), loaded=False),  # best: on both fronts
        row("pool", "pool", result(80.0, 0.045, 410.0)),  # cheapest and fastest: on both
        row("tome", "tome", result(100.0, 0.05, 280.0)),  # baseline's accuracy for fewer GFLOPs, slower
        row("evit", "evit", result(95.0, 0.06, 310.0)),  # beaten on GFLOPs by tome; faster than the baseline
        row("random", "random", result(84.0, 0.05, math.nan)),  # clips/s n/a: on neither speed front
    ]
    table = table_rows(rows)
    assert [(t.pareto_gflops, t.pareto_speed) for t in table] == [
        (False, True), (True, True), (True, False), (False, True), (False, False)]
    assert [t.pareto for t in table] == ["clips/s", "GFLOPs, clips/s", "GFLOPs", "clips/s", "-"]
    text = text_table(table).splitlines()
    assert text[0].split()[-2:] == ["Pareto", "front"] and text[2].startswith("none (baseline)")
    assert text[-1].endswith("-") and "n/a" in text[-1]


# -- per-class changes ----------------------------------------------------------------------------

def test_per_class_changes_match_classes_by_name_and_rank_gains_and_losses():
    baseline = result(90.0, 0.07, 300.0, per_class(100.0, 100.0, 50.0, 75.0, 100.0, None))
    # The row lists its classes in another order and lacks one: matched by name, not by position.
    other = result(85.0, 0.05, 320.0, dict(list(per_class(75.0, 100.0, 75.0, 75.0, 50.0, 100.0).items())[::-1][:5]))
    changes = class_changes(baseline, other)
    assert [c.name for c in changes] == list(CLASSES)
    assert [c.delta for c in changes] == [None, 0.0, 25.0, 0.0, -50.0, None]  # blue_down missing; red_up no videos
    assert class_changes(baseline, result(85.0, 0.05, 320.0)) == []  # a result without per-class accuracy

    changes = [ClassChange(n, 100.0, t) for n, t in zip("abcdefg", (90.0, 80.0, 90.0, 100.0, 110.0, 90.0, None))]
    losses, gains = most_changed(changes, n=3)
    assert [c.name for c in losses] == ["b", "a", "c"]  # -20, then the -10s by name (f is cut)
    assert [c.name for c in gains] == ["e"]

    table = markdown_changes([("tome", "r=8", changes), ("semantic", "layer=2", []),
                              ("pool", "layers=2", [ClassChange("x|y", 50.0, 50.0)])], n=3)
    lines = table.splitlines()
    assert lines[2] == "| tome | r=8 | 4 / 1 | b (-20.0), a (-10.0), c (-10.0) | e (+10.0) |"
    assert lines[3] == "| semantic | layer=2 | n/a | n/a | n/a |"
    assert lines[4] == "| pool | layers=2 | 0 / 0 | - | - |"


# -- the files ------------------------------------------------------------------------------------

def outputs(tmp_path: Path, rows: list[RowResult], skipped=()) -> dict[str, Path]:
    settings = SimpleNamespace(baseline_checkpoint=None, published=None, published_new_head=False, finetune_epochs=1)
    config = {"data": {"num_frames": 8, "crop_size": 64}, "trainer": {"max_epochs": 2}}
    return write_outputs(tmp_path, rows, settings, config, skipped=skipped)


def test_report_has_both_plots_the_front_and_the_per_class_table(tmp_path):
    baseline = result(100.0, 0.07, 300.0, per_class(100.0, 100.0, 100.0, 100.0, 100.0, 100.0))
    rows = [
        RowResult("baseline", None, baseline, loaded=True),
        row("pool_l2", "pool", result(75.0, 0.045, 410.0, per_class(100.0, 50.0, 100.0, 75.0, 25.0, 100.0))),
        row("semantic_l2", "semantic", result(100.0, 0.048, 405.0, per_class(*[100.0] * 6)), adds_parameters=True),
    ]
    # A row finished by an earlier run is read back from its result.json, per-class accuracy included.
    earlier = EvaluationResult.from_json(result(95.0, 0.06, 310.0, per_class(100.0, 100.0, 75.0, 100.0, 100.0, 100.0)).to_json())
    rows.append(RowResult("evit", Strategy("evit", "evit", {"keep_rate": 0.7}), earlier, loaded=True))
    paths = outputs(tmp_path, rows)

    assert set(paths) == {"report", "csv", "json", "gflops_plot", "speed_plot"}
    assert paths["gflops_plot"].name == GFLOPS_PLOT_FILE and paths["speed_plot"].name == SPEED_PLOT_FILE
    for key in ("gflops_plot", "speed_plot"):
        assert paths[key].read_bytes()[:8] == PNG
    report = paths["report"].read_text()
    assert f"![video top-1 against GFLOPs]({GFLOPS_PLOT_FILE})" in report
    assert f"![video top-1 against clips/s]({SPEED_PLOT_FILE})" in report
    assert "| Pareto front |" in report
    assert "| semantic | r=8 | fine-tuned | 1.100 | 0.0480 | 405.0 | 1.35x |" in report
    lines = report.splitlines()
    assert lines[lines.index("## Per-class changes against the baseline") + 6:][:3] == [
        "| pool | r=8 | 3 / 0 | red_down (-75.0), blue_up (-50.0), green_up (-25.0) | - |",
        "| semantic | r=8 | 0 / 0 | - | - |",
        "| evit | keep_rate=0.7 | 1 / 0 | green_down (-25.0) | - |",
    ]
    with open(paths["csv"]) as f:
        flags = [(r["name"], r["pareto_gflops"], r["pareto_speed"]) for r in csv.DictReader(f)]
    assert flags == [("baseline", "false", "false"), ("pool_l2", "true", "true"),
                     ("semantic_l2", "true", "true"), ("evit", "false", "false")]
    data = json.loads(paths["json"].read_text())
    assert data["rows"][1]["pareto_gflops"] is True and data["rows"][0]["pareto_speed"] is False
    assert data["rows"][1]["per_class_delta"] == {"blue_down": 0.0, "blue_up": -50.0, "green_down": 0.0,
                                                  "green_up": -25.0, "red_down": -75.0, "red_up": 0.0}
    assert all(len(r["per_class_delta"]) == 6 for r in data["rows"])


def test_report_renders_with_skipped_rows_and_values_not_measured(tmp_path):
    baseline = result(100.0, 0.07, math.nan, per_class(100.0, None, 100.0, 100.0, 100.0, 100.0))
    rows = [
        RowResult("baseline", None, baseline, loaded=False),
        row("tome_r8", "tome", result(math.nan, 0.05, 280.0, per_class(None, None, None, None, None, None))),
        row("pool_l2", "pool", result(75.0, 0.045, math.nan)),  # an older result without per-class accuracy
    ]
    paths = outputs(tmp_path, rows, skipped=[("semantic_l2", "adds parameters")])
    report = paths["report"].read_text()
    assert "Not run: semantic_l2 (adds parameters)." in report
    assert "Not in this plot (GFLOPs or video top-1 n/a): tome_r8." in report
    assert "Not in this plot (clips/s or video top-1 n/a): baseline, tome_r8, pool_l2." in report
    assert "| tome | r=8 | n/a | n/a | n/a |" in report  # no class measured on both sides
    assert "| pool | r=8 | n/a | n/a | n/a |" in report
    for key in ("gflops_plot", "speed_plot"):
        assert paths[key].read_bytes()[:8] == PNG  # the clips/s plot has no point at all, and still renders
    data = json.loads(paths["json"].read_text())
    assert [(r["pareto_gflops"], r["pareto_speed"]) for r in data["rows"]] == [(True, False), (False, False), (True, False)]
    assert data["rows"][0]["per_class_delta"]["blue_up"] is None and data["rows"][2]["per_class_delta"] == {}
    assert data["rows"][1]["video_top1"] is None


def test_report_without_per_class_accuracy_says_so():
    table = table_rows([RowResult("baseline", None, result(100.0, 0.07, 300.0), loaded=False),
                        row("tome_r8", "tome", result(90.0, 0.05, 280.0))])
    meta = {"views": [2, 3], "published": None, "baseline_checkpoint": None, "baseline_epochs": 1, "machine": "m",
            "torch": "t", "date": "d", "model": "m", "num_frames": 8, "crop_size": 64, "skipped": [],
            "finetune_epochs": 1, "data_dir": "d", "split": "test", "videos_evaluated": 1, "videos": 1,
            "video_list_hash": "h", "video_list_hashes": ["h"], "machines": ["m"], "unreadable": [],
            "aggregate": "softmax", "precision": "32", "num_classes": 0}
    report = markdown_report(table, meta, plots=False, changes={})
    assert "The baseline's result has no per-class accuracy." in report and GFLOPS_PLOT_FILE not in report
    assert "## Per-class" not in markdown_report(table, meta, plots=False, changes=None)


# -- uncertainty ----------------------------------------------------------------------------------

def with_predictions(res: EvaluationResult, right: list[bool]) -> EvaluationResult:
    """`res` with one prediction per entry of `right` (video i right at top-1 or not, 3 views), its
    accuracies and intervals as `result_of` would set them."""
    from dataclasses import replace

    from videotok.evaluate.result import VideoPrediction
    from videotok.evaluate.statistics import VideoOutcomes, accuracy_intervals

    preds = [VideoPrediction(f"v{i:03d}.mp4", 0, 3, 3 if r else 1, [0 if r else 1], [1.0]) for i, r in enumerate(right)]
    a = accuracy_intervals(VideoOutcomes.from_predictions(preds))
    top1 = 100.0 * sum(right) / len(right)
    clip_top1 = 100.0 * sum(3 if r else 1 for r in right) / (3 * len(right))
    return replace(res, predictions=preds, video_top1=top1, clip_top1=clip_top1,
                   video_top1_low=a.video_top1.low, video_top1_high=a.video_top1.high,
                   clip_top1_low=a.clip_top1.low, clip_top1_high=a.clip_top1.high)


def test_every_row_carries_its_intervals_and_the_paired_test(tmp_path):
    # 40 videos. tome: right on 6 videos the baseline misses, wrong on 1 it gets (b=1, c=6: p=0.125,
    # within noise); pool: wrong on 8 the baseline gets (b=8, c=0: p=2/256, beyond noise).
    base = [i >= 10 for i in range(40)]  # 30 right
    tome = [(i >= 4 and i != 10) for i in range(40)]
    pool = [i >= 18 for i in range(40)]
    rows = [RowResult("baseline", None, with_predictions(result(0, 0.07, 300.0), base), loaded=False),
            row("tome_r8", "tome", with_predictions(result(0, 0.05, 320.0), tome)),
            row("pool_l2", "pool", with_predictions(result(0, 0.045, 410.0), pool))]
    table = table_rows(rows)
    t = {r.name: r for r in table}
    assert (t["tome_r8"].baseline_only, t["tome_r8"].row_only, t["tome_r8"].mcnemar_p) == (1, 6, 0.125)
    assert (t["pool_l2"].baseline_only, t["pool_l2"].row_only) == (8, 0)
    assert t["pool_l2"].mcnemar_p == pytest.approx(2 / 256) and t["pool_l2"].differs_from_baseline
    assert not t["tome_r8"].differs_from_baseline and t["baseline"].mcnemar_p == 1.0
    assert t["tome_r8"].delta_video_top1 == pytest.approx(12.5)
    assert t["tome_r8"].delta_video_top1_low < 12.5 < t["tome_r8"].delta_video_top1_high
    assert t["pool_l2"].delta_video_top1_high < 0  # 8 losses, no gain: every resample loses
    assert t["baseline"].video_top1_low == rows[0].result.video_top1_low  # the row's own, as evaluate gives it
    assert (t["baseline"].delta_video_top1_low, t["baseline"].delta_video_top1_high) == (0.0, 0.0)

    text = text_table(table)
    assert "Δ video top-1 [95 %]" in text.splitlines()[0] and "McNemar p" in text.splitlines()[0]
    pool_line = text.splitlines()[4]
    pool = t["pool_l2"]
    assert f"{pool.video_top1:.1f} [{pool.video_top1_low:.1f}, {pool.video_top1_high:.1f}]" in pool_line
    assert (f"-20.0 [{t['pool_l2'].delta_video_top1_low:+.1f}, {t['pool_l2'].delta_video_top1_high:+.1f}]"
            in pool_line) and "0.0078" in pool_line

    paths = outputs(tmp_path, rows)
    report = paths["report"].read_text()
    assert ("On the Pareto fronts, differ from the baseline beyond noise (exact McNemar p < 0.05): pool_l2 (-20.0); "
            "within noise of it: tome_r8.") in report
    assert "percentile bootstrap interval over the test videos (2000 resamples, seed 0" in report
    with open(paths["csv"]) as f:
        csv_rows = {r["name"]: r for r in csv.DictReader(f)}
    assert csv_rows["pool_l2"]["differs_from_baseline"] == "true" and csv_rows["tome_r8"]["mcnemar_p"] == "0.125"
    low = float(csv_rows["tome_r8"]["delta_video_top1_low"])
    assert low == pytest.approx(t["tome_r8"].delta_video_top1_low, abs=1e-4)
    data = json.loads(paths["json"].read_text())
    assert data["meta"]["bootstrap"]["resamples"] == 2000 and data["meta"]["seeds"] == [0]
    entry = data["rows"][1]
    for key in ("clip_top1_low", "clip_top1_high", "video_top1_low", "video_top1_high", "delta_video_top1_low",
                "delta_video_top1_high", "delta_clip_top1", "mcnemar_p", "baseline_only", "row_only",
                "paired_videos", "differs_from_baseline"):
        assert key in entry, key
    assert entry["paired_videos"] == 40 and entry["video_top1_sd"] is None  # one seed: no spread
    for key in ("gflops_plot", "speed_plot"):
        assert paths[key].read_bytes()[:8] == PNG


def test_several_seeds_give_the_mean_the_spread_and_pooled_intervals(tmp_path):
    from dataclasses import replace

    base = [with_predictions(result(0, 0.07, 300.0), [i >= s for i in range(40)]) for s in (4, 6)]
    tome = [with_predictions(result(0, 0.05, 320.0), [i >= s for i in range(40)]) for s in (8, 6)]
    base = [replace(r, extra={**r.extra, "seed": seed, "seed_folder": f"seed{seed}"}) for r, seed in zip(base, (0, 1))]
    tome = [replace(r, extra={**r.extra, "seed": seed, "seed_folder": f"seed{seed}"}) for r, seed in zip(tome, (0, 1))]
    rows = [RowResult("baseline", None, base[0], loaded=False, other_seeds=(base[1],)),
            RowResult("tome_r8", Strategy("tome_r8", "tome", {"r": 8}), tome[0], loaded=False, other_seeds=(tome[1],))]
    table = table_rows(rows)
    assert table[1].seeds == 2 and table[1].video_top1 == pytest.approx((80.0 + 85.0) / 2)
    assert table[1].video_top1_sd == pytest.approx(math.sqrt(2) * 2.5)  # sample sd of 80 and 85
    assert table[1].delta_video_top1 == pytest.approx(-5.0)
    # seed 0: the row misses 4 the baseline gets (p = 0.125); seed 1: the same decisions (p = 1)
    assert (table[1].baseline_only, table[1].row_only, table[1].mcnemar_p) == (4, 0, 1.0)
    assert "video top-1 sd (seeds)" in text_table(table).splitlines()[0]
    settings = SimpleNamespace(baseline_checkpoint=None, published=None, published_new_head=False, finetune_epochs=1,
                               seeds=(0, 1))
    config = {"data": {"num_frames": 8, "crop_size": 64}, "trainer": {"max_epochs": 2}}
    paths = write_outputs(tmp_path, rows, settings, config)
    data = json.loads(paths["json"].read_text())
    assert data["meta"]["seeds"] == [0, 1]
    assert data["rows"][1]["video_top1_seeds"] == [80.0, 85.0] and data["rows"][1]["seed_values"] == [0, 1]
    assert data["rows"][1]["result_files"] == ["seed0/tome_r8/result.json", "seed1/tome_r8/result.json"]
    assert "trained once per seed (0, 1)" in paths["report"].read_text()
