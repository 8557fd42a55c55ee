"""The model of a one-video command (`predict`, `visualize`): a published checkpoint (--pretrained
SOURCE) or a videotok one (--config C --ckpt_path P), with the preprocessing it was trained with."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Optional

from videotok.models.base import VideoBackbone
from videotok.models.published import FORMATS, Preprocessing
from videotok.reduce.choice import ReducerChoice


@dataclass
class LoadedModel:
    model: VideoBackbone  # in eval mode, its reducer built from --reducer or the checkpoint's own
    preprocessing: Preprocessing
    classes: list[str]
    weights: str  # where the weights came from, as printed
    reducer_args: dict[str, Any]


def add_weight_arguments(parser: Any) -> None:
    parser.add_argument("--pretrained", metavar="SOURCE", help="a published video checkpoint: a file, a folder "
                        "or a hub id (see README, 'Published checkpoints')")
    parser.add_argument("--format", choices=FORMATS, help="the format of --pretrained (default: detected)")
    parser.add_argument("--classes", help="class names, one per line, for a checkpoint that carries none")
    add_num_heads_argument(parser)
    parser.add_argument("--config", help="with --ckpt_path: the experiment config it was trained with")
    parser.add_argument("--ckpt_path", help="a videotok checkpoint (.ckpt) in place of --pretrained")


def add_num_heads_argument(parser: Any) -> None:
    parser.add_argument("--num-heads", type=int, help="the attention heads of --pretrained, where its files do not "
                        "state them (no weight shape shows them; without them a count is guessed, with a warning)")


def check_weight_arguments(args: argparse.Namespace) -> None:
    """One source of weights, before any work."""
    if args.pretrained and args.ckpt_path:
        raise ValueError("give either --pretrained SOURCE or --config C --ckpt_path P, not both")
    if not args.pretrained and not (args.ckpt_path and args.config):
        raise ValueError("give the weights: --pretrained SOURCE, or --config C --ckpt_path P")


def load_model(args: argparse.Namespace, reducer: Optional[ReducerChoice]) -> LoadedModel:
    """The model the weight options name; `reducer` (from --reducer) replaces a checkpoint's own."""
    check_weight_arguments(args)
    if args.pretrained:
        return _published(args, reducer)
    return _trained(args, reducer)


def _published(args: argparse.Namespace, reducer: Optional[ReducerChoice]) -> LoadedModel:
    from videotok.models.published import load_published

    checkpoint = load_published(args.pretrained, args.format, classes=args.classes, num_heads=args.num_heads)
    model = checkpoint.build(reducer.build() if reducer else None)
    if model.reducer.adds_parameters:
        print(f"note: {model.reducer.name} adds parameters that {checkpoint.source} lacks: they are as initialised, "
              "untrained (fine-tune them with `videotok compare` and compare.finetune_published: true)", flush=True)
    return LoadedModel(model, checkpoint.preprocessing, checkpoint.classes, f"published {checkpoint.source}",
                       dict(reducer.args) if reducer else {})


def _trained(args: argparse.Namespace, reducer: Optional[ReducerChoice]) -> LoadedModel:
    from videotok.config import load_config
    from videotok.evaluate.predict import datamodule_preprocessing
    from videotok.train.build import build_classifier, build_datamodule
    from videotok.train.checkpoint import load_checkpoint

    config = load_config(args.config)
    datamodule = build_datamodule(config)
    classifier = build_classifier(config, datamodule, reducer, checkpoint=load_checkpoint(args.ckpt_path))
    return LoadedModel(classifier.model.eval(), datamodule_preprocessing(datamodule), datamodule.classes,
                       f"checkpoint {args.ckpt_path}", dict(classifier.hparams.reducer_args or {}))
