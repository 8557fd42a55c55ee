"""Reducers by name: strategies register themselves, configs and the CLI build them by name."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any, Callable, Sequence, TypeVar

import yaml

_REDUCERS: dict[str, type] = {}
_DISCOVERED = False
T = TypeVar("T", bound=type)


def register_reducer(name: str) -> Callable[[T], T]:
    """Class decorator: make a Reducer subclass buildable as `name`."""

    def wrap(cls: T) -> T:
        if name in _REDUCERS and _REDUCERS[name] is not cls:
            raise ValueError(f"reducer {name!r} is registered twice")
        cls.name = name
        _REDUCERS[name] = cls
        return cls

    return wrap


def _discover() -> None:
    """Import every module of videotok.reduce once, so each strategy file registers itself."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    package = importlib.import_module("videotok.reduce")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"videotok.reduce.{module.name}")
    _DISCOVERED = True


def list_reducers() -> list[str]:
    _discover()
    return sorted(_REDUCERS)


def reducer_class(name: str) -> type:
    _discover()
    if name not in _REDUCERS:
        raise ValueError(f"unknown reducer {name!r}; choose one of: {', '.join(sorted(_REDUCERS))}")
    return _REDUCERS[name]


def reducer_arguments(name: str) -> dict[str, inspect.Parameter]:
    """The constructor arguments of a reducer (what YAML and --reducer-arg may set)."""
    params = inspect.signature(reducer_class(name).__init__).parameters
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {k: p for k, p in params.items() if k != "self" and p.kind in kinds}


def parse_reducer_args(items: Sequence[str]) -> dict[str, Any]:
    """["r=13", "layers=3,6,9", "scope=frame"] -> {"r": 13, "layers": "3,6,9", "scope": "frame"}.

    Values are read as YAML scalars (ints, floats, booleans, null), anything else stays a string.
    """
    args: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--reducer-arg {item!r}: expected key=value, for example r=13 or layers=3,6,9")
        parsed = yaml.safe_load(value) if value.strip() else None
        args[key.strip()] = parsed if isinstance(parsed, (int, float, bool, type(None))) else value
    return args


def build_reducer(name: str = "none", **kwargs: Any):
    """Build reducer `name`; unknown arguments fail here, before any work starts."""
    cls = reducer_class(name)
    allowed = reducer_arguments(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"reducer {name!r} has no argument(s) {', '.join(unknown)}; "
            f"its arguments are: {', '.join(allowed) or '(none)'}"
        )
    return cls(**kwargs)
