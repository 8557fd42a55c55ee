"""Config files and command-line shortcuts shared by every command.

- `bases:` lets an experiment file state only its delta: the listed files (relative to it) are
  merged first, dictionaries key by key, everything else replaced.
- `--reducer NAME|PRESET.yaml --reducer-arg key=value ...` is the short form of `--model.reducer NAME
  --model.reducer_args {...}`; naming a reducer resets the arguments inherited from the config,
  which belonged to whatever reducer it named.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from videotok.reduce import parse_reducer_args
from videotok.reduce.presets import is_preset_path, load_preset

CONFIG_FLAGS = ("--config", "-c")


def merge(base: dict, delta: dict) -> dict:
    """Deep merge: nested dicts merge key by key; lists and scalars in `delta` replace."""
    out = dict(base)
    for key, value in delta.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read a YAML config with its `bases:` resolved; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    if path.resolve() in _seen:
        raise ValueError(f"--config {path}: `bases:` form a cycle through {path}")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"--config {path}: not valid YAML ({error})") from None
    if not isinstance(content, dict):
        raise ValueError(f"--config {path}: expected a mapping of options, got {type(content).__name__}")
    bases = content.pop("bases", [])
    if isinstance(bases, str):
        bases = [bases]
    merged: dict = {}
    for base in bases:
        merged = merge(merged, load_config(path.parent / base, _seen + (path.resolve(),)))
    return merge(merged, content)


def expand_configs(argv: Sequence[str]) -> list[str]:
    """Replace each `--config FILE` whose file has `bases:` by the merged YAML text (which
    LightningCLI accepts in place of a path)."""
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        value: Optional[str] = None
        if arg in CONFIG_FLAGS and i + 1 < len(args):
            value, i = args[i + 1], i + 2
        elif arg.startswith("--config="):
            value, i = arg.split("=", 1)[1], i + 1
        else:
            out.append(arg)
            i += 1
            continue
        if Path(value).is_file() and "bases" in (yaml.safe_load(Path(value).read_text()) or {}):
            value = yaml.safe_dump(load_config(value), sort_keys=False)
        out += ["--config", value]
    return out


def rewrite_reducer_flags(argv: Sequence[str]) -> list[str]:
    """`--reducer N --reducer-arg k=v` -> `--model.reducer N --model.reducer_args {"k": v}`."""
    out: list[str] = []
    reducer: Optional[str] = None
    pairs: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        for flag in ("--reducer", "--reducer-arg"):
            if arg == flag or arg.startswith(flag + "="):
                if arg == flag:
                    if i + 1 >= len(args):
                        raise ValueError(f"{flag} needs a value")
                    value, i = args[i + 1], i + 2
                else:
                    value, i = arg.split("=", 1)[1], i + 1
                if flag == "--reducer":
                    reducer = value
                else:
                    pairs.append(value)
                break
        else:
            out.append(arg)
            i += 1
    if pairs and reducer is None:
        raise ValueError("--reducer-arg needs --reducer NAME too (arguments belong to a reducer)")
    if reducer is not None:
        name, args = reducer_from_flags(reducer, pairs)
        out += ["--model.reducer", name, "--model.reducer_args", json.dumps(args)]
    return out


def reducer_from_flags(reducer: Optional[str], pairs: Sequence[str]) -> tuple[Optional[str], dict[str, Any]]:
    """The reducer named by argparse-collected `--reducer`/`--reducer-arg` values."""
    if pairs and reducer is None:
        raise ValueError("--reducer-arg needs --reducer NAME too (arguments belong to a reducer)")
    args = parse_reducer_args(list(pairs))
    if reducer is not None and is_preset_path(reducer):  # a preset file; --reducer-arg overrides it
        reducer, preset_args = load_preset(reducer)
        args = {**preset_args, **args}
    return reducer, args


def command_line_reducer(argv: Sequence[str]) -> dict[str, Any]:
    """The `--model.reducer` / `--model.reducer_args` options given in `argv` (after
    `rewrite_reducer_flags`), parsed: what must override a checkpoint's own reducer."""
    found: dict[str, Any] = {}
    args = list(argv)
    for i, arg in enumerate(args):
        for key in ("reducer", "reducer_args"):
            flag = f"--model.{key}"
            if arg == flag and i + 1 < len(args):
                found[key] = args[i + 1]
            elif arg.startswith(flag + "="):
                found[key] = arg.split("=", 1)[1]
    if "reducer_args" in found:
        found["reducer_args"] = yaml.safe_load(found["reducer_args"]) or {}
    return found
