"""`videotok flops`: GFLOPs per view, parameters and tokens per block, by running the model once."""
from __future__ import annotations

import argparse
from typing import Any, Optional

from videotok.config import load_config, reducer_from_flags
from videotok.flops import Cost, measure_cost
from videotok.models import create_model
from videotok.reduce import build_reducer


def add_reducer_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reducer", help="reducer name (see `videotok reducers`)")
    parser.add_argument("--reducer-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="reducer argument, repeatable: --reducer-arg r=13 --reducer-arg layers=3,6,9")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "flops", help="GFLOPs per view, params and tokens per block of a model (and reducer)",
        description="Counts one forward pass (one multiply-add = one FLOP, the papers' convention).",
    )
    parser.add_argument("--config", help="take model, frames, size and reducer from this config")
    parser.add_argument("--model", help="model name (see `videotok models`)")
    parser.add_argument("--num-frames", type=int)
    parser.add_argument("--img-size", type=int)
    parser.add_argument("--tubelet-size", type=int)
    parser.add_argument("--num-classes", type=int, help="classifier width (default 400; changes params only)")
    add_reducer_flags(parser)
    parser.set_defaults(run=run)


def settings_from_config(path: Optional[str]) -> dict[str, Any]:
    """The model settings a training config implies (data shape links into the model)."""
    if not path:
        return {}
    config = load_config(path)
    model = dict(config.get("model") or {})
    data = config.get("data") or {}
    out = {key: model[key] for key in ("model", "tubelet_size", "reducer", "reducer_args") if key in model}
    if "num_frames" in data:
        out["num_frames"] = data["num_frames"]
    if "crop_size" in data:
        out["img_size"] = data["crop_size"]
    out.update(model.get("model_args") or {})
    return out


def build_from_flags(args: argparse.Namespace):
    settings = settings_from_config(args.config)
    name = args.model or settings.pop("model", None)
    settings.pop("model", None)
    if not name:
        raise ValueError("--model NAME (or --config) is required; `videotok models` lists the names")
    for key in ("num_frames", "img_size", "tubelet_size", "num_classes"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    reducer, reducer_args = reducer_from_flags(args.reducer, args.reducer_arg)
    config_reducer = settings.pop("reducer", "none")
    config_args = settings.pop("reducer_args", None) or {}
    if reducer is None:
        reducer, reducer_args = config_reducer, config_args
    model = create_model(name, reducer=build_reducer(reducer, **reducer_args), **settings)
    return model, name, reducer, reducer_args


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
    model, name, reducer, reducer_args = build_from_flags(args)
    shape = f"{model.num_frames}x{model.img_size}"
    setting = " ".join(f"{k}={v}" for k, v in reducer_args.items())
    print(f"model: {name} ({shape}), reducer: {reducer} {setting}".rstrip())
    print(format_cost(measure_cost(model)))
    return 0
