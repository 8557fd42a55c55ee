"""Config files shared by every command: `bases:` lets an experiment file state only its delta;
the listed files (relative to it) are merged first, dictionaries key by key, everything else
replaced. (`--reducer` / `--reducer-arg` are each command's own arguments: reduce/choice.py.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import yaml

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


def with_published(config: dict, source: Optional[str], format: Optional[str] = None, classes: Optional[str] = None,
                   num_heads: Optional[int] = None) -> dict:
    """`config` with `--pretrained SOURCE` and `--format` (None: detected) as model.published and
    model.published_format, and where given `--classes` (model.published_classes) and `--num-heads`
    (model.num_heads); unchanged when `source` is None."""
    if not source:
        return config
    given = {k: v for k, v in (("published_classes", classes), ("num_heads", num_heads)) if v is not None}
    return {**config, "model": {**(config.get("model") or {}), "published": source, "published_format": format,
                                **given}}
