"""`videotok evaluate`: clip- and video-level multi-view accuracy of a checkpoint, with GFLOPs per
view, measured clips/s and every video of the list accounted for."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from videotok.config import load_config
from videotok.reduce.choice import ReducerChoice, add_reducer_arguments


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="clip- and video-level multi-view evaluation of a checkpoint",
        description="Scores every view of every video of a split; reports unreadable videos by path.",
    )
    parser.add_argument("--config", required=True, help="the experiment config the checkpoint was trained with")
    parser.add_argument("--ckpt_path", required=True, help="videotok checkpoint (.ckpt)")
    add_reducer_arguments(parser)
    parser.add_argument("--views", help="temporal clips x spatial crops, e.g. 4x3 (default: 1x3 "
                        "TimeSformer, 4x3 ViViT, as in their papers)")
    parser.add_argument("--aggregate", default="softmax", choices=("softmax", "logits"),
                        help="how views of a video are averaged (default softmax)")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--output", help="write the result as JSON here")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32", help="32, bf16 or 16 (autocast)")
    parser.add_argument("--batch-size", type=int, help="override data.batch_size")
    parser.add_argument("--num-workers", type=int, help="override data.num_workers")
    parser.add_argument("--per-class", action="store_true", help="print per-class accuracy too")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from videotok.evaluate import evaluate, parse_views
    from videotok.train.build import build_classifier, build_datamodule
    from videotok.train.checkpoint import load_checkpoint

    views = parse_views(args.views) if args.views else None  # bad --views fails before any work
    reducer = ReducerChoice.from_flags(args.reducer, args.reducer_arg)  # None: the checkpoint's own
    config = load_config(args.config)
    checkpoint = load_checkpoint(args.ckpt_path)
    datamodule = build_datamodule(config, batch_size=args.batch_size, num_workers=args.num_workers)
    classifier = build_classifier(config, datamodule, reducer, checkpoint=checkpoint)
    hp = classifier.hparams
    result = evaluate(
        classifier, datamodule, split=args.split, views=views, aggregate=args.aggregate,
        device=args.device, progress=not args.no_progress, precision=args.precision,
        extra={"config": str(args.config), "checkpoint": str(args.ckpt_path),
               "reducer_args": dict(hp.reducer_args or {})},
    )
    print(result.to_table(per_class=args.per_class))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(result.to_json())
        print(f"wrote {args.output}")
    return 0
