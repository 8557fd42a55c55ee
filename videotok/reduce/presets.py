"""Reducer presets (configs/reducer/*.yaml): `reducer: NAME` and `reducer_args: {...}`."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def is_preset_path(value: str) -> bool:
    return value.endswith((".yaml", ".yml"))


def load_preset(path: str | Path) -> tuple[str, dict[str, Any]]:
    """Read a preset file; errors name the file and the expected keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--reducer {path}: no such preset file (see configs/reducer/)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or "reducer" not in data or set(data) - {"reducer", "reducer_args"}:
        raise ValueError(f"{path}: a reducer preset holds `reducer: NAME` and optionally `reducer_args: {{...}}`")
    return str(data["reducer"]), dict(data.get("reducer_args") or {})
