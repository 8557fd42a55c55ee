"""`videotok flops`: GFLOPs per view, parameters and tokens per block, by running the model once."""
from __future__ import annotations

import argparse
from typing import Any

import torch

from videotok.commands.weights import add_num_heads_argument
from videotok.config import load_config, with_published
from videotok.flops import Cost, measure_cost
from videotok.models import VideoBackbone, create_model
from videotok.reduce.choice import ReducerChoice, add_reducer_arguments
from videotok.settings import published_checkpoint, resolve_model_settings


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "flops", help="GFLOPs per view, params and tokens per block of a model (and reducer)",
        description="Counts one forward pass (one multiply-add = one FLOP, the papers' convention).",
    )
    parser.add_argument("--config", help="take model, frames, size and reducer from this config")
    parser.add_argument("--model", help="model name (see `videotok models`)")
    parser.add_argument("--pretrained", metavar="SOURCE", help="the backbone a published video checkpoint builds "
                        "(a file, a folder or a hub id; its clip shape too)")
    add_num_heads_argument(parser)
    parser.add_argument("--num-frames", type=int)
    parser.add_argument("--img-size", type=int)
    parser.add_argument("--patch-size", type=int, help="patch side in pixels (e.g. 14 for a DINOv2-style ViT-S/14)")
    parser.add_argument("--tubelet-size", type=int)
    parser.add_argument("--num-classes", type=int, help="classifier width (default 400; changes params only)")
    add_reducer_arguments(parser)
    parser.set_defaults(run=run)


def build_from_flags(args: argparse.Namespace) -> tuple[VideoBackbone, ReducerChoice]:
    """The model the options describe: `--config` gives what training would build (videotok/settings.py),
    then `--model`, the shape options and `--reducer` override it."""
    reducer = ReducerChoice.from_flags(args.reducer, args.reducer_arg)
    name, overrides = args.model, {}
    if args.config or args.pretrained:
        config = with_published(load_config(args.config) if args.config else {}, args.pretrained,
                                num_heads=args.num_heads)
        published = published_checkpoint(config)  # its classifier's width, where it has one
        settings = resolve_model_settings(config, reducer, num_classes=len(published.classes) if published else None)
        name, overrides, reducer = args.model or settings.model, settings.backbone_overrides(), settings.reducer
    if not name:
        raise ValueError("--model NAME (or --config, or --pretrained) is required; `videotok models` lists the names")
    for key in ("num_frames", "img_size", "patch_size", "tubelet_size", "num_classes"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    reducer = reducer or ReducerChoice()
    # Seeded weights: where a reducer leaves frames with unequal token counts (global merges on
    # TimeSformer), the padded spatial attention, and so the count, follows the weights' merges.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = create_model(name, reducer=reducer.build(), **overrides)
    return model, reducer


def format_cost(cost: Cost) -> str:
    tokens = " -> ".join(str(n) for n in _compress(cost.tokens_per_block))
    return (f"GFLOPs per view: {format_gflops(cost.gflops)}\n"
            f"params: {cost.params_m:.2f} M\n"
            f"tokens per block: {tokens}")


def format_gflops(gflops: float) -> str:
    """195.8, 4.6, 0.0754: one decimal for big models, three significant digits otherwise."""
    return f"{gflops:.1f}" if gflops >= 100 else f"{gflops:#.3g}"


def _compress(tokens: list[int]) -> list[str]:
    """[197, 197, 197, 140] -> ['197 x3', '140']: long runs of equal counts stay readable."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        j = i
        while j + 1 < len(tokens) and tokens[j + 1] == tokens[i]:
            j += 1
        count = j - i + 1
        out.append(f"{tokens[i]}" if count == 1 else f"{tokens[i]} x{count}")
        i = j + 1
    return out


def run(args: argparse.Namespace) -> int:
    model, reducer = build_from_flags(args)
    shape = f"{model.num_frames}x{model.img_size}"
    # model_name, not --model: it states the patch and image size the model was built with
    print(f"model: {model.model_name} ({shape}), reducer: {reducer.name} {reducer.setting}".rstrip())
    print(format_cost(measure_cost(model)))
    return 0
