"""`videotok predict`: the top-k classes of one video, from a published checkpoint or a videotok one,
with or without a reducer (and then the GFLOPs it saves)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

from videotok.models.published import FORMATS
from videotok.reduce.choice import ReducerChoice, add_reducer_arguments


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict", help="top-k classes of one video (all its test views)",
        description="Decodes every test view of one video as evaluation does (the checkpoint's own "
                    "preprocessing and views), averages the softmax over them and prints the top-k "
                    "class names. With --reducer, also the GFLOPs per view it saves.",
    )
    parser.add_argument("--video", required=True, help="the video file")
    parser.add_argument("--pretrained", metavar="SOURCE", help="a published video checkpoint: a file, a folder "
                        "or a hub id (see README, 'Published checkpoints')")
    parser.add_argument("--format", choices=FORMATS, help="the format of --pretrained (default: detected)")
    parser.add_argument("--classes", help="class names, one per line, for a checkpoint that carries none")
    parser.add_argument("--config", help="with --ckpt_path: the experiment config it was trained with")
    parser.add_argument("--ckpt_path", help="a videotok checkpoint (.ckpt) in place of --pretrained")
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
    if args.pretrained and args.ckpt_path:
        raise ValueError("give either --pretrained SOURCE or --config C --ckpt_path P, not both")
    if args.pretrained:
        model, preprocessing, classes, weights = _published(args, reducer)
        reducer_args = dict(reducer.args) if reducer else {}
    elif args.ckpt_path and args.config:
        model, preprocessing, classes, weights, reducer_args = _trained(args, reducer)
    else:
        raise ValueError("give the weights: --pretrained SOURCE, or --config C --ckpt_path P")
    if views is not None:
        preprocessing = replace(preprocessing, views=views)
    prediction = predict_video(model, args.video, preprocessing, classes, weights,
                               reducer_args=reducer_args, topk=args.topk,
                               device=args.device, decoder=args.decoder)
    print(prediction.to_text())
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(prediction.to_json())
        print(f"wrote {args.output}")
    return 0


def _published(args: argparse.Namespace, reducer: ReducerChoice | None):
    from videotok.models.published import load_published

    checkpoint = load_published(args.pretrained, args.format, classes=args.classes)
    model = checkpoint.build(reducer.build() if reducer else None)
    return model, checkpoint.preprocessing, checkpoint.classes, f"published {checkpoint.source}"


def _trained(args: argparse.Namespace, reducer: ReducerChoice | None):
    from videotok.config import load_config
    from videotok.models.published import Preprocessing
    from videotok.train.build import build_classifier, build_datamodule
    from videotok.train.checkpoint import load_checkpoint

    config = load_config(args.config)
    datamodule = build_datamodule(config)
    classifier = build_classifier(config, datamodule, reducer, checkpoint=load_checkpoint(args.ckpt_path))
    preprocessing = Preprocessing(
        num_frames=datamodule.num_frames, sampling_rate=datamodule.sampling_rate,
        short_side=datamodule.eval_short_side, crop_size=datamodule.crop_size,
        mean=tuple(datamodule.mean), std=tuple(datamodule.std), views=tuple(datamodule.test_views),
    )
    weights = f"checkpoint {args.ckpt_path}"
    return classifier.model, preprocessing, datamodule.classes, weights, dict(classifier.hparams.reducer_args or {})
