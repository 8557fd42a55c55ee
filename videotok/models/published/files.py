"""Finding and reading a published checkpoint: a local weight file, a local folder in transformers'
`save_pretrained` layout, or a Hugging Face hub id fetched where the hub is reachable.

Only tensors and plain values are unpickled (`weights_only`); `transformers` is never imported:
config.json and the processor config are read as JSON.
"""
from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor

WEIGHT_SUFFIXES = (".pyth", ".pth", ".pt", ".bin", ".safetensors")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # save_pretrained's names, preferred first
PROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
HUB_FILES = ["config.json", *PROCESSOR_FILES]  # fetched with one of WEIGHT_FILES
STATE_KEYS = ("model_state", "module", "model", "state_dict")  # where training scripts nest the weights
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Found:
    """What one checkpoint is made of once read."""

    path: Path  # the weight file
    state: dict[str, Tensor]  # as stored, DDP's `module.` prefix removed
    container: Optional[str] = None  # the top-level key the weights were under (`model_state`, ...)
    extras: dict[str, Any] = field(default_factory=dict)  # the file's other top-level entries (e.g. `cfg`)
    config: Optional[dict[str, Any]] = None  # config.json
    processor: Optional[dict[str, Any]] = None  # the image/video processor config
    processor_file: Optional[Path] = None
    num_heads: Optional[int] = None  # the attention heads the user gave: wins over what the files state


def locate(source: str) -> Path:
    """A local file or folder, or the folder a hub id was fetched into."""
    path = Path(source).expanduser()
    if path.exists():
        return path.resolve()
    if _HUB_ID.match(source) and not source.endswith(WEIGHT_SUFFIXES):
        return fetch_from_hub(source)
    raise FileNotFoundError(
        f"published checkpoint {source!r} not found: give a local weight file ({', '.join(WEIGHT_SUFFIXES)}), "
        f"a folder with config.json and {' or '.join(WEIGHT_FILES)}, or a Hugging Face hub id owner/name"
    )


def fetch_from_hub(repo_id: str) -> Path:
    """Download only the configs and one weight file of `repo_id` (safetensors where there is one),
    or find them cached."""
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(repo_id, allow_patterns=[*HUB_FILES, WEIGHT_FILES[0]]))
        if not (folder / WEIGHT_FILES[0]).is_file():
            folder = Path(snapshot_download(repo_id, allow_patterns=[*HUB_FILES, WEIGHT_FILES[1]]))
        return folder
    except Exception as e:  # noqa: BLE001 - offline, unknown repo, gated: all end the same way
        raise RuntimeError(
            f"{repo_id!r} is no local file or folder, and fetching it from the Hugging Face hub failed "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Download it where the hub "
            f"is reachable (`hf download {repo_id} --local-dir DIR`) and pass the local folder DIR."
        ) from e


def weight_file(folder: Path) -> Path:
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if len(candidates) == 1:
        return candidates[0]
    listed = ", ".join(p.name for p in sorted(folder.iterdir())[:12])
    raise FileNotFoundError(
        f"{folder}: no {' or '.join(WEIGHT_FILES)} (and not exactly one other weight file) in it; it holds: {listed}"
    )


def read_json(path: Path) -> Optional[dict[str, Any]]:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from e


def read_torch(path: Path) -> Any:
    """A torch file's contents, tensors and plain values only (VideoMAE's saved `args` Namespace too)."""
    torch.serialization.add_safe_globals([argparse.Namespace])  # a plain attribute container
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001
        raise ValueError(
            f"{path}: cannot read it as a torch checkpoint of tensors ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}); save its state dict alone with torch.save and pass that"
        ) from e


def unwrap(content: Any, path: Path) -> tuple[dict[str, Tensor], Optional[str], dict[str, Any]]:
    """(state dict, the key it was nested under, the other top-level entries)."""
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a state dict, found a {type(content).__name__}")
    for key in STATE_KEYS:
        if isinstance(content.get(key), dict):
            extras = {k: v for k, v in content.items() if k != key}
            return content[key], key, extras
    return content, None, {}


def read(source: str) -> Found:
    """Find `source` and read its weights, config.json and processor config (those beside a weight
    file count too: a file taken out of a save_pretrained folder keeps its sizes and names)."""
    path = locate(source)
    weights = weight_file(path) if path.is_dir() else path
    folder = weights.parent
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state, container, extras = load_file(str(weights)), None, {}
    else:
        state, container, extras = unwrap(read_torch(weights), weights)
    tensors = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise ValueError(f"{weights}: no tensors found")
    processor_file = next((folder / n for n in PROCESSOR_FILES if (folder / n).is_file()), None)
    return Found(
        path=weights,
        state=tensors,
        container=container,
        extras=extras,
        config=read_json(folder / "config.json"),
        processor=read_json(processor_file) if processor_file else None,
        processor_file=processor_file,
    )
