"""The comparison's outputs: one table row per strategy and setting, as Markdown, CSV, JSON and text.

Speedup is measured (clips/s of the model's forward pass against the baseline's, same batch size
and device); GFLOPs per view come from `measure_cost`, the numbers `videotok flops` prints.
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

from videotok.compare.runner import RESULT_FILE, RowResult
from videotok.settings import data_options

REPORT_FILE = "report.md"
CSV_FILE = "results.csv"
JSON_FILE = "results.json"
PLOT_FILE = "accuracy_vs_gflops.png"


@dataclass(frozen=True)
class TableRow:
    name: str
    strategy: str
    setting: str
    trained: str
    params_m: float
    gflops_per_view: float
    clips_per_second: float
    speedup: float  # clips/s against the baseline's
    clip_top1: float
    clip_top5: float
    video_top1: float
    video_top5: float
    delta_video_top1: float  # percentage points against the baseline

    @property
    def is_baseline(self) -> bool:
        return self.strategy == "none"


# (header, field, format) of the Markdown and terminal tables
COLUMNS = (
    ("strategy", "strategy", "{}"),
    ("setting", "setting", "{}"),
    ("trained", "trained", "{}"),
    ("params (M)", "params_m", "{:.3f}"),
    ("GFLOPs/view", "gflops_per_view", "{:.4f}"),
    ("clips/s", "clips_per_second", "{:.1f}"),
    ("speedup", "speedup", "{:.2f}x"),
    ("clip top-1", "clip_top1", "{:.1f}"),
    ("clip top-5", "clip_top5", "{:.1f}"),
    ("video top-1", "video_top1", "{:.1f}"),
    ("video top-5", "video_top5", "{:.1f}"),
    ("Δ video top-1", "delta_video_top1", "{:+.1f}"),
)


def table_rows(rows: Sequence[RowResult]) -> list[TableRow]:
    """Rows as they appear in the table, the baseline (rows[0]) first."""
    baseline = rows[0].result
    out = []
    for row in rows:
        r = row.result
        out.append(TableRow(
            name=row.name, strategy=row.reducer, setting=row.setting, trained=row.trained,
            params_m=r.params_m, gflops_per_view=r.gflops_per_view, clips_per_second=r.clips_per_second,
            speedup=_ratio(r.clips_per_second, baseline.clips_per_second),
            clip_top1=r.clip_top1, clip_top5=r.clip_top5, video_top1=r.video_top1, video_top5=r.video_top5,
            delta_video_top1=r.video_top1 - baseline.video_top1,
        ))
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else math.nan


def _cell(fmt: str, value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    return fmt.format(value)


def _cells(row: TableRow) -> list[str]:
    cells = [_cell(fmt, getattr(row, attr)) for _, attr, fmt in COLUMNS]
    if row.is_baseline:
        cells[0] = "none (baseline)"
        cells[-1] = "0.0"
    return cells


def markdown_table(rows: Sequence[TableRow]) -> str:
    headers = [h for h, _, _ in COLUMNS]
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join(["---"] * 3 + ["---:"] * (len(headers) - 3)) + "|"]
    for row in rows:
        cells = _cells(row)
        if row.is_baseline:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def text_table(rows: Sequence[TableRow]) -> str:
    """The same table, aligned for a terminal."""
    grid = [[h for h, _, _ in COLUMNS]] + [_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(COLUMNS))]
    out = []
    for k, line in enumerate(grid):
        out.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths))))
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
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return value


def describe(rows: Sequence[RowResult], settings: Any, config: dict,
             skipped: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Run-level facts for the report header and results.json; `skipped`: (row, why) left out."""
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
        "skipped": [list(row) for row in skipped],
        "finetune_epochs": settings.finetune_epochs,
        "precision": baseline.precision,
        "device": baseline.device,
    }


def results_json(rows: Sequence[RowResult], table: Sequence[TableRow], meta: dict[str, Any]) -> str:
    entries = []
    for row, line in zip(rows, table):
        entry = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(line).items()}
        entry["reducer_args"] = {} if row.strategy is None else dict(row.strategy.reducer_args)
        entry["result_file"] = f"{row.name}/{RESULT_FILE}"
        entries.append(entry)
    return json.dumps({"meta": meta, "rows": entries}, indent=2)


def markdown_report(table: Sequence[TableRow], meta: dict[str, Any], plot: Optional[str]) -> str:
    clips, crops = meta["views"]
    if meta["published"]:
        trained = f"the published checkpoint {meta['published']}, not trained here"
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
        "Accuracies in %; Δ video top-1 in points against the baseline. GFLOPs per view count one "
        "multiply-add as one FLOP (as `videotok flops`). Clips/s: the model's forward pass alone, "
        "measured during the evaluation; speedup = clips/s over the baseline's.",
    ]
    if len(meta["video_list_hashes"]) > 1:
        lines += ["", f"**Warning:** rows were evaluated on different video lists: "
                      f"{', '.join(meta['video_list_hashes'])}."]
    if len(meta["machines"]) > 1:
        lines += ["", "Rows resumed from an earlier run were timed on: " + "; ".join(meta["machines"]) + "."]
    for name, why in meta["skipped"]:
        lines += ["", f"Not run: {name} ({why})."]
    if meta["unreadable"]:
        lines += ["", f"Unreadable videos ({len(meta['unreadable'])}): " + ", ".join(meta["unreadable"][:20])]
    if plot:
        lines += ["", f"Plot: [{plot}]({plot}) (video top-1 against GFLOPs per view).", "", f"![accuracy vs GFLOPs]({plot})"]
    lines += ["", f"Per-row details (per-class accuracy, timings, checkpoints): `<row>/{RESULT_FILE}`.", ""]
    return "\n".join(lines)


def _how_reducers_ran(meta: dict[str, Any]) -> str:
    free = "reducers without parameters training-free on its weights"
    if meta["published"] and meta["skipped"]:
        return f"{free}; those with parameters not run (they need compare.finetune_published: true)"
    return f"{free}, those with parameters fine-tuned {_count(meta['finetune_epochs'], 'epoch')} from it"


def _count(n: Any, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def write_outputs(run_dir: Path, rows: Sequence[RowResult], settings: Any, config: dict,
                  skipped: Sequence[tuple[str, str]] = ()) -> dict[str, Path]:
    """report.md, results.csv, results.json and the plot in `run_dir`; returns their paths."""
    from videotok.compare.plot import plot_accuracy_vs_gflops

    table = table_rows(rows)
    meta = describe(rows, settings, config, skipped)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"report": run_dir / REPORT_FILE, "csv": run_dir / CSV_FILE, "json": run_dir / JSON_FILE,
             "plot": run_dir / PLOT_FILE}
    chance = 100.0 / meta["num_classes"] if meta["num_classes"] else None
    plot_accuracy_vs_gflops(table, paths["plot"], chance=chance, title=f"{meta['model']} on {Path(meta['data_dir']).name} "
                                                       f"({meta['split']}, {meta['views'][0]}x{meta['views'][1]} views)")
    paths["csv"].write_text(csv_text(table))
    paths["json"].write_text(results_json(rows, table, meta))
    paths["report"].write_text(markdown_report(table, meta, PLOT_FILE))
    return paths
