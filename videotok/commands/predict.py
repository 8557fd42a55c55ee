"""`videotok predict`: the top-k classes of one video, from a published checkpoint or a videotok one,
with or without a reducer (and then the GFLOPs it saves)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from videotok.commands.weights import add_weight_arguments, load_model
from videotok.reduce.choice import ReducerChoice, add_reducer_arguments


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict", help="top-k classes of one video (all its test views)",
        description="Decodes every test view of one video as evaluation does (the checkpoint's own "
                    "preprocessing and views), averages the softmax over them and prints the top-k "
                    "class names. With --reducer, also the GFLOPs per view it saves.",
    )
    parser.add_argument("--video", required=True, help="the video file")
    add_weight_arguments(parser)
    add_reducer_arguments(parser)
    parser.add_argument("--topk", type=int, default=5, help="how many classes to print (default 5)")
    parser.add_argument("--views", help="temporal clips x spatial crops (default: the checkpoint's test views)")
    parser.add_argument("--output", help="also write the prediction as JSON here")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--decoder", default="decord", help="decord (default) or pyav")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from videotok.evaluate import parse_views
    from videotok.evaluate.predict import predict_video

    if args.topk < 1:
        raise ValueError(f"--topk {args.topk}: expected at least 1")
    if not Path(args.video).is_file():
        raise FileNotFoundError(f"--video {args.video}: no such file")
    views = parse_views(args.views) if args.views else None
    reducer = ReducerChoice.from_flags(args.reducer, args.reducer_arg)
    loaded = load_model(args, reducer)
    preprocessing = loaded.preprocessing if views is None else replace(loaded.preprocessing, views=views)
    prediction = predict_video(loaded.model, args.video, preprocessing, loaded.classes, loaded.weights,
                               reducer_args=loaded.reducer_args, topk=args.topk,
                               device=args.device, decoder=args.decoder)
    print(prediction.to_text())
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(prediction.to_json())
        print(f"wrote {args.output}")
    return 0
