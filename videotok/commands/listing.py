"""`videotok reducers` and `videotok models`: what can be named in a config or on the command line."""
from __future__ import annotations

import argparse
import inspect
from typing import Any

from videotok.models import list_models
from videotok.reduce import build_reducer, list_reducers, reducer_arguments, reducer_class


def add_parsers(subparsers: Any) -> None:
    subparsers.add_parser("reducers", help="list the token reducers and their arguments").set_defaults(run=run_reducers)
    subparsers.add_parser("models", help="list the backbone names").set_defaults(run=run_models)


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.splitlines()[0] if doc else ""


def _switches_off_parameters(name: str) -> list[str]:
    """The boolean options (default on) that, turned off, leave reducer `name` without parameters
    (crucial_merge's fusion, semantic's global_centres)."""
    off = []
    for arg, param in reducer_arguments(name).items():
        if param.default is True and not getattr(build_reducer(name, **{arg: False}), "adds_parameters", False):
            off.append(f"{arg}=false")
    return off


def run_reducers(args: argparse.Namespace) -> int:
    for name in list_reducers():
        cls = reducer_class(name)
        # An instance with the defaults: some add parameters only with an option (crucial_merge's fusion,
        # semantic's global_centres); the listing names the option that makes them training-free.
        adds = getattr(build_reducer(name), "adds_parameters", False)
        trained = ""
        if adds:
            off = _switches_off_parameters(name)
            free = f"; training-free with {' or '.join(off)}" if off else ""
            trained = f" [adds parameters with its defaults: train or fine-tune{free}]"
        print(f"{name}{trained}: {_summary(cls)}")
        print(f"    divided attention after it (TimeSformer): {cls.divided_attention}")
        for arg, param in reducer_arguments(name).items():
            default = "" if param.default is inspect.Parameter.empty else f" = {param.default!r}"
            print(f"    {arg}{default}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    for name in list_models():
        print(name)
    return 0
