"""`videotok evaluate`: clip- and video-level multi-view accuracy of a checkpoint, with GFLOPs per
view, measured clips/s and every video of the list accounted for."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from videotok.commands.devices import add_device_arguments, runtime_from_args
from videotok.commands.weights import add_num_heads_argument
from videotok.config import load_config, with_published
from videotok.models.published import FORMATS
from videotok.reduce.choice import ReducerChoice, add_reducer_arguments


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="clip- and video-level multi-view evaluation of a checkpoint",
        description="Scores every view of every video of a split; reports unreadable videos by path.",
    )
    parser.add_argument("--config", required=True, help="the experiment config the checkpoint was trained with "
                        "(with --pretrained: an evaluation preset, configs/experiment/eval_k400_*.yaml)")
    parser.add_argument("--ckpt_path", help="videotok checkpoint (.ckpt)")
    parser.add_argument("--pretrained", metavar="SOURCE", help="a published video checkpoint in place of "
                        "--ckpt_path: a file, a folder or a hub id (sets model.published; its preprocessing "
                        "and test views fill what the config leaves out)")
    parser.add_argument("--format", choices=FORMATS, help="the format of --pretrained (default: detected)")
    parser.add_argument("--classes", help="class names of --pretrained, one per line, for a checkpoint that carries "
                        "none (a K710 one: the data's classes among them are then matched by name)")
    add_num_heads_argument(parser)
    parser.add_argument("--data-dir", help="override data.data_dir")
    add_reducer_arguments(parser)
    parser.add_argument("--views", help="temporal clips x spatial crops, e.g. 4x3 (default: a published "
                        "checkpoint's own; else 1x3 TimeSformer, 4x3 ViViT and VideoMAE, as in their papers)")
    parser.add_argument("--aggregate", default="softmax", choices=("softmax", "logits"),
                        help="how views of a video are averaged (default softmax)")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--output", help="write the result as JSON here")
    parser.add_argument("--run-dir", help="flush per-video results here as the pass goes; the same command "
                        "run again resumes from them (default: OUTPUT.parts/ next to --output, removed once "
                        "the output is written; none without --output)")
    parser.add_argument("--flush-every", type=int, default=200, metavar="N",
                        help="videos per process between flushes to --run-dir (default 200)")
    add_device_arguments(parser)
    parser.add_argument("--precision", help="32, bf16 or 16 (autocast; default: the config's trainer.precision, else 32)")
    parser.add_argument("--batch-size", type=int, help="views per batch (default: data.eval_batch_size, else "
                        "data.batch_size)")
    parser.add_argument("--num-workers", type=int, help="override data.num_workers")
    parser.add_argument("--per-class", action="store_true", help="print per-class accuracy too")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from videotok.evaluate import evaluate, parse_views
    from videotok.evaluate.pass_store import PassStore
    from videotok.train.build import build_classifier, build_datamodule, published_restriction
    from videotok.train.checkpoint import load_checkpoint

    views = parse_views(args.views) if args.views else None  # bad --views fails before any work
    reducer = ReducerChoice.from_flags(args.reducer, args.reducer_arg)  # None: the checkpoint's own
    config = with_published(load_config(args.config), args.pretrained, args.format, args.classes, args.num_heads)
    runtime = runtime_from_args(config, args, precision=args.precision)
    published = (config.get("model") or {}).get("published")
    if not args.ckpt_path and not published:
        raise ValueError("give the weights: --ckpt_path CKPT (a videotok checkpoint) or --pretrained SOURCE "
                         "(a published one; or model.published in the config)")
    checkpoint = load_checkpoint(args.ckpt_path) if args.ckpt_path else None
    datamodule = build_datamodule(config, data_dir=args.data_dir, eval_batch_size=args.batch_size,
                                  num_workers=args.num_workers)
    classifier = build_classifier(config, datamodule, reducer, checkpoint=checkpoint)
    if views is None and published:
        views = tuple(datamodule.test_views)  # the checkpoint's published protocol, or the config's
    hp = classifier.hparams
    run_dir = Path(args.run_dir) if args.run_dir else Path(args.output + ".parts") if args.output else None
    extra = {"config": str(args.config), "checkpoint": str(args.ckpt_path or published),
             "reducer_args": dict(hp.reducer_args or {})}
    restriction = published_restriction(config, datamodule) if published and not checkpoint else None
    if restriction:
        extra["class_restriction"] = restriction
        print(f"note: {restriction}", flush=True)
    result = evaluate(
        classifier, datamodule, split=args.split, views=views, aggregate=args.aggregate,
        progress=not args.no_progress, runtime=runtime, extra=extra, run_dir=run_dir, flush_every=args.flush_every,
        signature={**extra, "reducer": hp.reducer, "weights": _fingerprint(args.ckpt_path or published),
                   "views": list(views) if views else None, "aggregate": args.aggregate, "split": args.split,
                   "data_dir": str(datamodule.data_dir)},
    )
    if result is None:  # not rank 0: rank 0 reports
        return 0
    print(result.to_table(per_class=args.per_class))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(result.to_json())
        print(f"wrote {args.output}")
        if run_dir is not None and not args.run_dir:
            PassStore(run_dir).remove()  # the output holds it all; a rerun evaluates afresh
    return 0


def _fingerprint(source: str) -> list:
    """Size and modification time of the weights: a checkpoint replaced at the same path is another run."""
    from videotok.compare.settings import file_fingerprint

    return file_fingerprint(source)
