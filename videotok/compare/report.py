"""The comparison's outputs: one table row per strategy and setting, as Markdown, CSV, JSON and text,
with the Pareto front marked, the two accuracy plots and the per-class changes against the baseline.

Speedup is measured (clips/s of the model's forward pass against the baseline's, same batch size
and device); GFLOPs per view are the mean over the views evaluated, from the tokens each view kept
(`flops.Cost.change`); where that differs from the blank-clip count `videotok flops` prints (a cost
that follows the content), the table shows both.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from videotok.compare.pareto import pareto_front
from videotok.compare.per_class import TOP_CLASSES, ClassChange, class_changes, deltas_by_class, markdown_changes
from videotok.compare.pictures import PICTURE_FILE
from videotok.compare.runner import RESULT_FILE, RowResult
from videotok.evaluate.statistics import SIGNIFICANCE, Bootstrap, VideoOutcomes, comparison_statistics
from videotok.settings import data_options

REPORT_FILE = "report.md"
CSV_FILE = "results.csv"
JSON_FILE = "results.json"
GFLOPS_PLOT_FILE = "accuracy_vs_gflops.png"
SPEED_PLOT_FILE = "accuracy_vs_clips_per_second.png"


@dataclass(frozen=True)
class TableRow:
    """One row of the table. With several seeds (compare.seeds) every number is the mean over the
    seeds, `*_sd` their spread (sample standard deviation; NaN with one seed) and the intervals are
    those of the mean (each resampled video carries every seed's decisions). Intervals: 95 %
    percentile bootstrap over the test videos (videotok.evaluate.statistics); deltas are paired
    (row - baseline on the same videos and seed, in points)."""

    name: str
    strategy: str
    setting: str
    trained: str
    params_m: float
    gflops_per_view: float  # mean over the views evaluated
    gflops_blank: float  # counted on a blank clip (`videotok flops`)
    clips_per_second: float
    speedup: float  # clips/s against the baseline's
    model_seconds: float  # the row's forward time over the whole split
    videos_per_second: float
    clip_top1: float
    clip_top5: float
    video_top1: float
    video_top5: float
    delta_video_top1: float  # percentage points against the baseline
    pareto_gflops: bool  # on the front of video top-1 against GFLOPs per view (compare.pareto)
    pareto_speed: bool  # on the front of video top-1 against measured clips/s
    clip_top1_low: float = math.nan  # 95 % interval of clip top-1 (bootstrap over videos, their views carried)
    clip_top1_high: float = math.nan
    video_top1_low: float = math.nan  # 95 % interval of video top-1
    video_top1_high: float = math.nan
    delta_clip_top1: float = math.nan  # clip top-1 against the baseline, points, paired
    delta_clip_top1_low: float = math.nan
    delta_clip_top1_high: float = math.nan
    delta_video_top1_low: float = math.nan  # 95 % interval of delta_video_top1 (paired bootstrap)
    delta_video_top1_high: float = math.nan
    paired_videos: int = 0  # videos both the row and the baseline scored (what the paired figures use)
    baseline_only: int = 0  # videos right (video top-1) for the baseline only; summed over seeds
    row_only: int = 0  # videos right for the row only; summed over seeds
    mcnemar_p: float = math.nan  # exact McNemar p of the video-level decisions (several seeds: the largest)
    differs_from_baseline: bool = False  # mcnemar_p < 0.05: the video-level decisions differ beyond noise
    seeds: int = 1  # how many seeds (compare.seeds) the numbers are the mean of
    clip_top1_sd: float = math.nan  # spread over seeds
    video_top1_sd: float = math.nan

    @property
    def is_baseline(self) -> bool:
        return self.strategy == "none"

    @property
    def pareto(self) -> str:
        """The fronts the row is on, as the table's cell."""
        fronts = [name for name, on in (("GFLOPs", self.pareto_gflops), ("clips/s", self.pareto_speed)) if on]
        return ", ".join(fronts) or "-"


# (header, field, format) of the Markdown and terminal tables
COLUMNS = (
    ("strategy", "strategy", "{}"),
    ("setting", "setting", "{}"),
    ("trained", "trained", "{}"),
    ("params (M)", "params_m", "{:.3f}"),
    ("GFLOPs/view", "gflops_per_view", "{:.4f}"),
    ("clips/s", "clips_per_second", "{:.1f}"),
    ("speedup", "speedup", "{:.2f}x"),
    ("clip top-1 [95 %]", "clip_top1", "{:.1f}"),
    ("clip top-5", "clip_top5", "{:.1f}"),
    ("video top-1 [95 %]", "video_top1", "{:.1f}"),
    ("video top-5", "video_top5", "{:.1f}"),
    ("Δ video top-1 [95 %]", "delta_video_top1", "{:+.1f}"),
    ("McNemar p", "mcnemar_p", "{:.2g}"),
    ("Pareto front", "pareto", "{}"),
)
SEED_COLUMN = ("video top-1 sd (seeds)", "video_top1_sd", "{:.1f}")  # after video top-1, with several seeds
_TEXT_COLUMNS = {"strategy", "setting", "trained", "pareto"}  # left-aligned; numbers are right-aligned
# cells followed by their interval: field -> (low, high) fields
_INTERVALS = {"clip_top1": ("clip_top1_low", "clip_top1_high"), "video_top1": ("video_top1_low", "video_top1_high"),
              "delta_video_top1": ("delta_video_top1_low", "delta_video_top1_high")}


def table_rows(rows: Sequence[RowResult], bootstrap: Bootstrap = Bootstrap()) -> list[TableRow]:
    """Rows as they appear in the table, the baseline (rows[0]) first; with several seeds, each
    number is the mean over them. Intervals and tests come from the per-video predictions of each
    row's results (a result without them gets n/a)."""
    outcomes = {row.name: [VideoOutcomes.from_predictions(r.predictions) for r in row.results] for row in rows}
    stats = comparison_statistics(outcomes[rows[0].name], outcomes, bootstrap)
    baseline_speed = _mean(r.clips_per_second for r in rows[0].results)
    baseline_video = _mean(r.video_top1 for r in rows[0].results)
    accuracies = [_mean(r.video_top1 for r in row.results) for row in rows]
    by_gflops = pareto_front([_mean(r.gflops_per_view for r in row.results) for row in rows], accuracies,
                             lower_cost_is_better=True)
    by_speed = pareto_front([_mean(r.clips_per_second for r in row.results) for row in rows], accuracies,
                            lower_cost_is_better=False)
    out = []
    for row, on_gflops, on_speed in zip(rows, by_gflops, by_speed):
        results, r, st = row.results, row.result, stats[row.name]
        paired = st.paired

        def mean(attr: str) -> float:
            return _mean(getattr(x, attr) for x in results)

        out.append(TableRow(
            name=row.name, strategy=row.reducer, setting=row.setting, trained=row.trained,
            params_m=r.params_m, gflops_per_view=mean("gflops_per_view"), gflops_blank=r.gflops_per_view_blank,
            clips_per_second=mean("clips_per_second"), speedup=_ratio(mean("clips_per_second"), baseline_speed),
            model_seconds=mean("model_seconds"), videos_per_second=mean("videos_per_second"),
            clip_top1=mean("clip_top1"), clip_top5=mean("clip_top5"), video_top1=mean("video_top1"),
            video_top5=mean("video_top5"), delta_video_top1=mean("video_top1") - baseline_video,
            pareto_gflops=on_gflops, pareto_speed=on_speed,
            clip_top1_low=st.accuracy.clip_top1.low, clip_top1_high=st.accuracy.clip_top1.high,
            video_top1_low=st.accuracy.video_top1.low, video_top1_high=st.accuracy.video_top1.high,
            delta_clip_top1=paired.delta_clip_top1, delta_clip_top1_low=paired.delta_clip_top1_interval.low,
            delta_clip_top1_high=paired.delta_clip_top1_interval.high,
            delta_video_top1_low=paired.delta_video_top1_interval.low,
            delta_video_top1_high=paired.delta_video_top1_interval.high,
            paired_videos=paired.videos, baseline_only=paired.baseline_only, row_only=paired.row_only,
            mcnemar_p=paired.mcnemar_p, differs_from_baseline=paired.differs, seeds=len(results),
            clip_top1_sd=_sd([x.clip_top1 for x in results]), video_top1_sd=_sd([x.video_top1 for x in results]),
        ))
    return out


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else math.nan


def _sd(values: list[float]) -> float:
    """Sample standard deviation over seeds; NaN with one."""
    if len(values) < 2:
        return math.nan
    m = _mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def columns(rows: Sequence[TableRow]) -> tuple[tuple[str, str, str], ...]:
    """The table's columns: COLUMNS, with the spread over seeds when there are several."""
    if not any(r.seeds > 1 for r in rows):
        return COLUMNS
    at = [attr for _, attr, _ in COLUMNS].index("video_top1") + 1
    return (*COLUMNS[:at], SEED_COLUMN, *COLUMNS[at:])


def front_noise(rows: Sequence[TableRow]) -> str:
    """Which rows of the Pareto fronts differ from the baseline beyond noise, in one sentence."""
    front = [r for r in rows if (r.pareto_gflops or r.pareto_speed) and not r.is_baseline]
    if not front:
        return "No row besides the baseline is on a Pareto front."
    if not any(math.isfinite(r.mcnemar_p) for r in front):
        return "The rows on the Pareto fronts have no per-video predictions to test against the baseline."
    differ = [f"{r.name} ({r.delta_video_top1:+.1f})" for r in front if r.differs_from_baseline]
    within = [r.name for r in front if math.isfinite(r.mcnemar_p) and not r.differs_from_baseline]
    parts = [f"differ from the baseline beyond noise (exact McNemar p < {SIGNIFICANCE:g}): "
             f"{', '.join(differ) or 'none'}"]
    if within:
        parts.append(f"within noise of it: {', '.join(within)}")
    return "On the Pareto fronts, " + "; ".join(parts) + "."


def _ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else math.nan


def _cell(fmt: str, value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    return fmt.format(value)


def _cells(row: TableRow, cols: Sequence[tuple[str, str, str]] = COLUMNS) -> list[str]:
    cells = [_cell(fmt, getattr(row, attr)) for _, attr, fmt in cols]
    attrs = [attr for _, attr, _ in cols]
    if math.isfinite(row.gflops_blank) and not math.isclose(row.gflops_per_view, row.gflops_blank, rel_tol=1e-6):
        cells[attrs.index("gflops_per_view")] += f" (blank {row.gflops_blank:.4f})"
    for attr, (low, high) in _INTERVALS.items():
        cells[attrs.index(attr)] += _bounds(getattr(row, low), getattr(row, high), signed=attr.startswith("delta"))
    if row.is_baseline:
        cells[attrs.index("strategy")] = "none (baseline)"
        cells[attrs.index("delta_video_top1")] = "0.0"
        cells[attrs.index("mcnemar_p")] = "-"
    return cells


def _bounds(low: float, high: float, signed: bool) -> str:
    """` [-4.2, +1.4]`, or nothing when the interval was not computed."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    fmt = "{:+.1f}" if signed else "{:.1f}"
    return f" [{fmt.format(low)}, {fmt.format(high)}]"


def markdown_table(rows: Sequence[TableRow]) -> str:
    cols = columns(rows)
    headers = [h for h, _, _ in cols]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if attr in _TEXT_COLUMNS else "---:" for _, attr, _ in cols) + "|"]
    for row in rows:
        cells = _cells(row, cols)
        if row.is_baseline:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def text_table(rows: Sequence[TableRow]) -> str:
    """The same table, aligned for a terminal."""
    cols = columns(rows)
    grid = [[h for h, _, _ in cols]] + [_cells(r, cols) for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(cols))]
    out = []
    left = [attr in _TEXT_COLUMNS for _, attr, _ in cols]
    for k, line in enumerate(grid):
        out.append("  ".join(c.ljust(w) if l else c.rjust(w) for c, w, l in zip(line, widths, left)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def csv_text(rows: Sequence[TableRow]) -> str:
    buffer = io.StringIO()
    fields = list(TableRow.__dataclass_fields__)
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in asdict(row).items()})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return value


def describe(rows: Sequence[RowResult], settings: Any, config: dict,
             skipped: Sequence[tuple[str, str]] = (), evaluation: Any = None) -> dict[str, Any]:
    """Run-level facts for the report header and results.json; `skipped`: (row, why) left out;
    `evaluation`: this run's evaluation pass (a PassOutcome), None when every row was loaded."""
    baseline = rows[0].result
    hashes = sorted({r.result.video_list_hash for r in rows})
    data = data_options(config)
    trainer = config.get("trainer") or {}
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": baseline.extra.get("machine", ""),
        "machines": sorted({str(r.result.extra.get("machine", "")) for r in rows}),
        "torch": torch.__version__,
        "model": baseline.model,
        "num_frames": data.get("num_frames"),
        "crop_size": data.get("crop_size"),
        "data_dir": baseline.data_dir,
        "split": baseline.split,
        "videos": baseline.videos_expected,
        "videos_evaluated": baseline.videos_evaluated,
        "num_classes": len(baseline.per_class),
        "unreadable": sorted({u.path for r in rows for u in r.result.unreadable}),
        "video_list_hash": baseline.video_list_hash,
        "video_list_hashes": hashes,
        "views": list(baseline.views),
        "aggregate": baseline.aggregate,
        "baseline_epochs": trainer.get("max_epochs"),
        "baseline_checkpoint": settings.baseline_checkpoint,
        "published": settings.published,
        "published_new_head": settings.published_new_head,
        "class_restriction": baseline.extra.get("class_restriction"),
        "skipped": [list(row) for row in skipped],
        "seeds": list(getattr(settings, "seeds", None) or [getattr(settings, "seed", 0)]),
        "bootstrap": Bootstrap().describe(),
        "finetune_epochs": settings.finetune_epochs,
        "precision": baseline.precision,
        "device": baseline.device,
        "evaluation": None if evaluation is None else {
            **evaluation.timing_summary(), "rows": list(evaluation.rows), "videos": len(evaluation.video_list),
            "device": evaluation.device},
    }


def results_json(rows: Sequence[RowResult], table: Sequence[TableRow], meta: dict[str, Any],
                 changes: Optional[dict[str, list[ClassChange]]] = None) -> str:
    """The table and `meta`; each row also gets its reducer arguments, its result file and
    `per_class_delta`, every class's change in video top-1 (points, null where not measured)."""
    entries = []
    for row, line in zip(rows, table):
        entry = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(line).items()}
        entry["reducer_args"] = {} if row.strategy is None else dict(row.strategy.reducer_args)
        entry["result_file"] = _result_file(row.result, row.name)
        if len(row.results) > 1:  # compare.seeds: every seed's figures and result file
            entry["seed_values"] = [r.extra.get("seed") for r in row.results]
            entry["result_files"] = [_result_file(r, row.name) for r in row.results]
            for attr in ("clip_top1", "video_top1", "gflops_per_view", "clips_per_second"):
                entry[f"{attr}_seeds"] = [_finite_or_none(getattr(r, attr)) for r in row.results]
        entry["per_class_delta"] = deltas_by_class((changes or {}).get(row.name, []))
        entries.append(entry)
    return json.dumps({"meta": meta, "rows": entries}, indent=2)


def _result_file(result: Any, name: str) -> str:
    """The row's result.json relative to the run folder (under seed<k>/ with several seeds)."""
    folder = result.extra.get("seed_folder")
    return f"{folder}/{name}/{RESULT_FILE}" if folder else f"{name}/{RESULT_FILE}"


def _finite_or_none(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


def markdown_report(table: Sequence[TableRow], meta: dict[str, Any], plots: bool = True,
                    changes: Optional[dict[str, list[ClassChange]]] = None) -> str:
    """The report: run facts, the table, notes, both plots and the per-class changes (`changes`:
    row name -> `class_changes` against the baseline; None leaves the section out)."""
    clips, crops = meta["views"]
    if meta["published"] and meta.get("published_new_head"):
        trained = (f"the published checkpoint {meta['published']} fine-tuned {_count(meta['finetune_epochs'], 'epoch')} "
                   "on these classes (a new head)")
    elif meta["published"]:
        trained = f"the published checkpoint {meta['published']}, not trained here"
        if meta.get("class_restriction"):
            trained += f" ({meta['class_restriction']})"
    elif meta["baseline_checkpoint"]:
        trained = f"the given checkpoint {meta['baseline_checkpoint']}"
    else:
        trained = f"trained {_count(meta['baseline_epochs'], 'epoch')}"
    lines = [
        "# Token reduction against the full-token baseline",
        "",
        f"- **Machine:** {meta['machine']}; torch {meta['torch']}; {meta['date']}",
        f"- **Model:** {meta['model']}, {meta['num_frames']} frames x {meta['crop_size']} px; "
        f"baseline {trained}; {_how_reducers_ran(meta)}",
        f"- **Data:** {meta['data_dir']}, split `{meta['split']}`, {meta['videos_evaluated']} of "
        f"{meta['videos']} videos evaluated, video list hash `{meta['video_list_hash']}`",
        f"- **Protocol:** {clips} clips x {crops} crops per video, {meta['aggregate']} averaged for "
        f"video-level accuracy; precision {meta['precision']}",
        "",
        markdown_table(table),
        "",
        front_noise(table),
        "",
        f"Accuracies in %; Δ video top-1 in points against the baseline. {_uncertainty_note(meta)} "
        "GFLOPs per view count one "
        "multiply-add as one FLOP (as `videotok flops`). Clips/s: the model's forward pass alone, "
        "measured during the evaluation; speedup = clips/s over the baseline's. GFLOPs per view are the mean "
        "over the views evaluated, counted from the tokens each kept; `(blank x)` gives the blank-clip count "
        "of `videotok flops` where the content moved it. Pareto front: no other "
        "row (the baseline included) has at least the row's video top-1 at no more GFLOPs per view "
        "(`GFLOPs`) or at no fewer clips/s (`clips/s`) while being better on one of the two; rows equal "
        "on both are all on it, and a row with a value n/a is on neither.",
    ]
    if meta.get("evaluation"):
        lines += ["", _where_the_time_went(meta["evaluation"])]
    if len(meta["video_list_hashes"]) > 1:
        lines += ["", f"**Warning:** rows were evaluated on different video lists: "
                      f"{', '.join(meta['video_list_hashes'])}."]
    if len(meta["machines"]) > 1:
        lines += ["", "Rows resumed from an earlier run were timed on: " + "; ".join(meta["machines"]) + "."]
    for name, why in meta["skipped"]:
        lines += ["", f"Not run: {name} ({why})."]
    if meta["unreadable"]:
        lines += ["", f"Unreadable videos ({len(meta['unreadable'])}): " + ", ".join(meta["unreadable"][:20])]
    if plots:
        lines += ["", "## Accuracy against cost", ""]
        lines += [f"Video top-1 against GFLOPs per view ([{GFLOPS_PLOT_FILE}]({GFLOPS_PLOT_FILE})) and against "
                  f"measured clips/s ([{SPEED_PLOT_FILE}]({SPEED_PLOT_FILE})); the step line joins the Pareto "
                  "front (labels in bold); the bars are the 95 % intervals of video top-1."]
        for file, attr, what in ((GFLOPS_PLOT_FILE, "gflops_per_view", "GFLOPs"),
                                 (SPEED_PLOT_FILE, "clips_per_second", "clips/s")):
            lines += ["", f"![video top-1 against {what}]({file})"]
            missing = [r.name for r in table if not (math.isfinite(getattr(r, attr)) and math.isfinite(r.video_top1))]
            if missing:
                lines += ["", f"Not in this plot ({what} or video top-1 n/a): {', '.join(missing)}."]
    if changes is not None:
        lines += ["", "## Per-class changes against the baseline", ""]
        lines += _per_class_section(table, meta, changes)
    if meta.get("pictures"):
        lines += ["", "## One test clip through each strategy", "",
                  "Each token's region outlined in its colour after the blocks where the token count drops "
                  "(grey: patches no token holds any more), as `videotok visualize` draws it.", ""]
        lines += [f"**{name}**\n\n![{name}]({picture})\n" for name, picture in meta["pictures"].items()]
    lines += ["", f"Per-row details (per-class accuracy, timings, checkpoints): `<row>/{RESULT_FILE}`.", ""]
    return "\n".join(lines)


def _uncertainty_note(meta: dict[str, Any]) -> str:
    """What the brackets and the p-value mean (and the seeds, when there are several)."""
    boot = meta.get("bootstrap") or Bootstrap().describe()
    seeds = meta.get("seeds") or [None]
    note = (f"[brackets]: {100 * boot['confidence']:.0f} % percentile bootstrap interval over the test videos "
            f"({boot['resamples']} resamples, seed {boot['seed']}; a resampled video carries all its views); for "
            "Δ the same resampled videos score both rows (paired). McNemar p: exact two-sided test of the "
            "video-level top-1 decisions against the baseline's on the same videos; below "
            f"{boot['significance']:g} the row differs from the baseline beyond noise.")
    if len(seeds) > 1:
        note += (f" Every trained row was trained once per seed ({', '.join(str(s) for s in seeds)}), the "
                 "training-free rows evaluated on each seed's baseline: numbers are the mean over the seeds, sd "
                 "their spread, intervals those of the mean (a resampled video carries every seed's decisions), "
                 "and p the largest of the seeds' tests.")
    return note


def _per_class_section(table: Sequence[TableRow], meta: dict[str, Any],
                       changes: dict[str, list[ClassChange]]) -> list[str]:
    if not meta["num_classes"]:
        return ["The baseline's result has no per-class accuracy."]
    rows = [(line.strategy, line.setting, changes.get(line.name, [])) for line in table if not line.is_baseline]
    if not rows:
        return ["No row besides the baseline."]
    seeds = meta.get("seeds") or []
    which = f" (seed {seeds[0]}, the first of compare.seeds)" if len(seeds) > 1 else ""
    return [f"Video top-1 per class in points against the baseline{which}, over {meta['num_classes']} classes: how "
            f"many went down and up, and the {TOP_CLASSES} that lost and gained most (equal changes by class "
            "name). Every class's change: `per_class_delta` in results.json.", "", markdown_changes(rows)]


def _where_the_time_went(evaluation: dict[str, Any]) -> str:
    """One line: the pass's wall time against what the data and each row's model took."""
    rows = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in evaluation["model_seconds"].items())
    resumed = f" over {evaluation['runs']} runs (resumed)" if evaluation["runs"] > 1 else ""
    return (f"**Where the time went:** one pass over {evaluation['videos']} videos for {len(evaluation['rows'])} "
            f"rows on {evaluation['device']}: {evaluation['wall_seconds']:.1f} s wall{resumed}, "
            f"{evaluation['wait_seconds']:.1f} s waiting for decoded clips (summed over processes); "
            f"model time per row: {rows}.")


def _how_reducers_ran(meta: dict[str, Any]) -> str:
    free = "reducers without parameters training-free on its weights"
    if meta["published"] and meta["skipped"]:
        return f"{free}; those with parameters not run (they need compare.finetune_published: true)"
    return f"{free}, those with parameters fine-tuned {_count(meta['finetune_epochs'], 'epoch')} from it"


def _count(n: Any, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def write_outputs(run_dir: Path, rows: Sequence[RowResult], settings: Any, config: dict,
                  skipped: Sequence[tuple[str, str]] = (), evaluation: Any = None,
                  table: Optional[Sequence[TableRow]] = None) -> dict[str, Path]:
    """report.md, results.csv, results.json and both plots in `run_dir`; returns their paths
    (`evaluation`: this run's pass, whose timings the report gives; `table`: `table_rows(rows)`
    when computed already, its bootstrap included)."""
    from videotok.compare.plot import plot_accuracy_vs_clips_per_second, plot_accuracy_vs_gflops

    table = table if table is not None else table_rows(rows)
    meta = describe(rows, settings, config, skipped, evaluation)
    pictures = {row.name: str(Path(_result_file(row.result, row.name)).parent / PICTURE_FILE) for row in rows}
    meta["pictures"] = {name: path for name, path in pictures.items() if (run_dir / path).is_file()}
    changes = {row.name: class_changes(rows[0].result, row.result) for row in rows}
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"report": run_dir / REPORT_FILE, "csv": run_dir / CSV_FILE, "json": run_dir / JSON_FILE,
             "gflops_plot": run_dir / GFLOPS_PLOT_FILE, "speed_plot": run_dir / SPEED_PLOT_FILE}
    chance = 100.0 / meta["num_classes"] if meta["num_classes"] else None
    title = (f"{meta['model']} on {Path(meta['data_dir']).name} "
             f"({meta['split']}, {meta['views'][0]}x{meta['views'][1]} views)")
    plot_accuracy_vs_gflops(table, paths["gflops_plot"], chance=chance, title=title)
    plot_accuracy_vs_clips_per_second(table, paths["speed_plot"], chance=chance, title=title, device=meta["device"])
    paths["csv"].write_text(csv_text(table))
    paths["json"].write_text(results_json(rows, table, meta, changes))
    paths["report"].write_text(markdown_report(table, meta, plots=True, changes=changes))
    return paths
