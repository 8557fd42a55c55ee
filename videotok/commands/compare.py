"""`videotok compare`: train the full-token baseline once, score every reducer against it, one report."""
from __future__ import annotations

import argparse
from typing import Any

from videotok.commands.devices import add_device_arguments, runtime_from_args
from videotok.commands.weights import add_num_heads_argument
from videotok.models.published import FORMATS


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare", help="every reducer against the full-token baseline, one report",
        description="Trains the full-token baseline once, evaluates the reducers without parameters "
                    "training-free on its checkpoint, fine-tunes those with parameters from it, and "
                    "writes report.md (the table with the Pareto front marked, both plots, the classes that "
                    "gain and lose most), results.csv, results.json, accuracy_vs_gflops.png and "
                    "accuracy_vs_clips_per_second.png to the run folder. A rerun resumes: finished rows are "
                    "loaded, not recomputed. With no --config it runs the embedded default (synthetic set, generated on first use, on the CPU). "
                    "With --pretrained (or model.published) the baseline is a published checkpoint: nothing "
                    "is trained unless compare.finetune_published asks for the reducers with parameters (or, on data "
                    "of other classes, for the baseline: fine-tuned first with a new head). "
                    "Every row is evaluated in one pass over the split (each clip decoded once), on the devices "
                    "of --accelerator/--devices/--num_nodes/--strategy (else the config's trainer section); an "
                    "interrupted pass resumes from <run-dir>/pass/ when the same command runs again.",
    )
    parser.add_argument("--config", help="experiment config with a `compare:` section (default: the embedded "
                        "synthetic comparison, videotok/defaults/compare.yaml)")
    parser.add_argument("--run-dir", help="where results and the report go (default: compare.run_dir)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="compute only these rows (names from "
                        "compare.strategies); the baseline always runs, and rows finished earlier stay in the report")
    parser.add_argument("--pretrained", metavar="SOURCE", help="a published video checkpoint as the baseline "
                        "(a file, a folder or a hub id; sets model.published)")
    parser.add_argument("--format", choices=FORMATS, help="the format of --pretrained (default: detected)")
    parser.add_argument("--classes", help="class names of --pretrained, one per line, for a checkpoint that carries "
                        "none (sets model.published_classes)")
    add_num_heads_argument(parser)
    parser.add_argument("--visualize", action="store_true", help="also draw the split's first video through "
                        "every row's model (<row>/tokens.png, shown in report.md; see `videotok visualize`)")
    add_device_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def _quiet_lightning() -> None:
    """Our own progress lines say what runs; Lightning's start-up notices would drown them."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*treespec.*")  # a Lightning-internal deprecation


def run(args: argparse.Namespace) -> int:
    from videotok.compare import default_config_path, load_default_config, prepare, run_compare, text_table
    from videotok.compare.report import front_noise
    from videotok.compare.runner import is_rank_zero
    from videotok.config import load_config, with_published

    _quiet_lightning()
    config = load_config(args.config) if args.config else load_default_config()
    config = with_published(config, args.pretrained, args.format, args.classes, args.num_heads)
    source = args.config or f"{default_config_path()} (embedded default)"
    settings = prepare(config, run_dir=args.run_dir, only=args.only, visualize=args.visualize)  # every error before any work
    runtime = runtime_from_args(config, args)
    rows = ", ".join(f"{s.name} ({s.trained})" for s in settings.strategies if settings.selected(s))
    if is_rank_zero():
        print(f"config: {source}\nrun folder: {settings.run_dir}, devices: {runtime.describe()}\n"
              f"rows: baseline, {rows}")
    outcome = run_compare(config, settings, runtime=runtime, progress=not args.no_progress)
    if outcome is None:  # not rank 0: rank 0 reports
        return 0
    print()
    print(text_table(outcome.table))
    print(front_noise(outcome.table))
    print()
    width = max(len(what) for what in outcome.paths)
    for what, path in outcome.paths.items():
        print(f"{what.replace('_', ' '):>{width}}: {path}")
    return 0
