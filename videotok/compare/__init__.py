"""`videotok compare`: every token reduction strategy against the full-token baseline, one report.

    settings = prepare(config)                # the `compare:` section and every row, checked
    outcome = run_compare(config, settings)   # trains, evaluates, writes report.md & co.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import torch

from videotok.compare.report import TableRow, table_rows, text_table, write_outputs
from videotok.compare.runner import Comparison, Log, RowResult, SeededComparison, elapsed, is_rank_zero
from videotok.compare.settings import (
    BASELINE,
    CompareSettings,
    Strategy,
    check_strategies,
    default_config_path,
    load_default_config,
    parse_settings,
)
from videotok.evaluate import Runtime
from videotok.settings import published_checkpoint
from videotok.train.build import build_datamodule, published_restriction


@dataclass(frozen=True)
class CompareOutcome:
    rows: list[RowResult]
    table: list[TableRow]
    paths: dict[str, Path]  # report, csv, json, gflops_plot, speed_plot


def prepare(config: dict, run_dir: Optional[str] = None, only: Optional[list[str]] = None,
            visualize: bool = False) -> CompareSettings:
    """Everything that can be wrong with a config, found before any work: the `compare:` section,
    the data options, each row's reducer bound to the backbone, and whether it adds parameters."""
    settings = parse_settings(config, run_dir=run_dir, only=only, visualize=visualize)
    datamodule = build_datamodule(config)  # checks the data options; reads no file yet
    new_head = published_new_head(config, datamodule, settings)
    return replace(settings, strategies=check_strategies(config, settings.strategies), published_new_head=new_head)


def published_new_head(config: dict, datamodule: Any, settings: CompareSettings) -> bool:
    """Whether `model.published` has other classes than the data (its classes.txt read here): its
    baseline is then fine-tuned on them first with a new head, which compare.finetune_published
    must allow."""
    if not settings.published:
        return False
    published = published_checkpoint(config)
    if len(published.classes) == datamodule.num_classes or published_restriction(config, datamodule):
        return False  # its own head, on the data's classes (or those of its own that are the data's)
    if not settings.finetune_published:
        raise ValueError(f"model.published {settings.published} has {len(published.classes)} classes, the data "
                         f"{datamodule.num_classes}: compare.finetune_published: true fine-tunes it on the data's "
                         "classes first (a new head, compare.finetune_epochs), then compares on that baseline")
    return True


def run_compare(config: dict, settings: CompareSettings, runtime: Optional[Runtime] = None,
                progress: bool = True, log: Log = print) -> Optional[CompareOutcome]:
    """Train/evaluate what is missing in `settings.run_dir`, then write the report there.
    `settings` must come from `prepare` (which knows which rows must be fine-tuned). `runtime`: the
    devices (default: the config's trainer section). None on every process but rank 0."""
    start = time.perf_counter()
    if settings.torch_threads:
        # On a small shared CPU, more intra-op threads than free cores make training many times slower.
        torch.set_num_threads(settings.torch_threads)
    kind = Comparison if len(settings.seeds) == 1 else SeededComparison
    comparison = kind(config, settings, runtime=runtime, progress=progress, log=log)
    rows = comparison.run()
    if not is_rank_zero():
        return None
    table = table_rows(rows)
    paths = write_outputs(settings.run_dir, rows, settings, config, skipped=comparison.skipped,
                          evaluation=comparison.outcome, table=table)
    comparison.finish_pass()
    log(f"compare finished in {elapsed(start)}")
    return CompareOutcome(rows, table, paths)


__all__ = [
    "BASELINE", "CompareOutcome", "CompareSettings", "Comparison", "RowResult", "SeededComparison", "Strategy",
    "TableRow",
    "check_strategies", "default_config_path", "load_default_config", "parse_settings", "prepare",
    "run_compare", "table_rows", "text_table", "write_outputs",
]
