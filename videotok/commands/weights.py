"""The model of a one-video command (`predict`, `visualize`): a published checkpoint (--pretrained
SOURCE) or a videotok one (--config C --ckpt_path P), with the preprocessing it was trained with."""
from __future__ import annotations

import argparse
from typing import Any, Optional

from videotok.api import Loaded, load_with_details
from videotok.models.published import FORMATS
from videotok.reduce.choice import ReducerChoice

LoadedModel = Loaded  # the model, its preprocessing, classes, weights and reducer arguments


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
    loaded = load_with_details(args.pretrained, reducer, format=args.format, classes=args.classes,
                               num_heads=args.num_heads)
    if loaded.model.reducer.adds_parameters:
        print(f"note: {loaded.model.reducer.name} adds parameters that {args.pretrained} lacks: they are as "
              "initialised, untrained (fine-tune them with `videotok compare` and compare.finetune_published: true)",
              flush=True)
    return loaded


def _trained(args: argparse.Namespace, reducer: Optional[ReducerChoice]) -> LoadedModel:
    loaded = load_with_details(args.ckpt_path, reducer, config=args.config)
    return loaded
