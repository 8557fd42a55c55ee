"""VideoClassifier checkpoints: reading them, and the layouts older releases wrote.

Release 0.1.0 registered the reducer twice, as `VideoClassifier.reducer` and as the backbone's
`model.reducer`, so every reducer parameter was saved under two keys (`reducer.K` and
`model.reducer.K`, the same tensor) and the optimiser saw the reducer's parameters first. Today
the reducer is held once, by the backbone. `upgrade_checkpoint` maps the old layout onto today's:

    reducer.K            -> dropped (the same tensor as model.reducer.K, which stays)
    reducer.K alone      -> model.reducer.K
    optimizer_states     -> each group's parameter order rotated to today's (reducer last)
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

OLD_PREFIX = "reducer."
PREFIX = "model.reducer."


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint file, read on the CPU; a missing file is named."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--ckpt_path {path}: no such checkpoint")
    return torch.load(path, map_location="cpu", weights_only=False)


def upgrade_state_dict(state: dict[str, Tensor], prefix: str = "") -> bool:
    """Map release 0.1.0's duplicate `reducer.*` keys (under `prefix`) in place; True when there
    were any."""
    old = [key for key in state if key.startswith(prefix + OLD_PREFIX)]
    for key in old:
        value = state.pop(key)
        state.setdefault(prefix + "model." + key[len(prefix):], value)
    return bool(old)


def upgrade_on_load(module: nn.Module, state: dict[str, Tensor], prefix: str, *args: Any) -> None:
    """A load_state_dict pre-hook: any state dict of release 0.1.0 loads as it is given."""
    upgrade_state_dict(state, prefix)


def upgrade_checkpoint(checkpoint: dict[str, Any], module: nn.Module, groups: list[dict]) -> None:
    """Bring a checkpoint of release 0.1.0 to today's layout, in place (a newer one is left as it
    is). `groups`: `module`'s optimiser parameter groups as `configure_optimizers` makes them."""
    if not upgrade_state_dict(checkpoint.get("state_dict", {})):
        return
    names = {id(p): n for n, p in module.named_parameters()}
    reducer_counts = [sum(names[id(p)].startswith(PREFIX) for p in g["params"]) for g in groups]
    for optimizer in checkpoint.get("optimizer_states", []):
        for group, count in zip(optimizer.get("param_groups", []), reducer_counts):
            ids = group["params"]  # 0.1.0 order: this group's reducer parameters first
            group["params"] = ids[count:] + ids[:count]
