"""Attaching a videotok backbone to a model the user holds (the host), and taking it off again.

The backbone is registered as the host's submodule `videotok`, so `train()`/`eval()`, `.to()` and
`.half()` reach it with the host (its parameters are the host's own; `videotok.patching.share`), and a
reducer's parameters (semantic centres, crucial_merge's fusion) are among `host.parameters()`, so an
optimiser trains them. It stays out of the host's state dict, except those reducer parameters: a
patched model saves and loads the same keys as the original. The host's `forward` is replaced by an
instance attribute carrying the original's signature; `detach` deletes it (or puts back one the
host had), so the class and every module of the host are as they were.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn

from videotok.reduce.base import Reducer

ATTRIBUTE = "videotok"  # the host's submodule holding the backbone
RECORD = "_videotok_patch"  # what `detach` needs, kept in the host's __dict__
_OWN_KEYS = re.compile(rf"(^|\.){ATTRIBUTE}\.(?!reducer\.)")  # the backbone's entries, reducer excepted


@dataclass
class PatchRecord:
    """What patching changed on a host: the forward it had as an instance attribute (None: the class's)."""

    instance_forward: Optional[Callable[..., Any]]
    kind: str  # the adapter's name ("transformers VideoMAEForVideoClassification", "timm ViT")


def is_patched(model: nn.Module) -> bool:
    return RECORD in model.__dict__


def backbone_of(model: nn.Module) -> nn.Module:
    """The videotok backbone a patched host runs."""
    if not is_patched(model):
        raise ValueError(f"{type(model).__name__} is not patched: call videotok.patch(model, reducer) first")
    return getattr(model, ATTRIBUTE)


def fit_reducer(backbone: nn.Module, reducer: Reducer) -> Reducer:
    """`reducer` bound to `backbone`, on the device and dtype of the backbone's weights. Raises
    ValueError (from `bind`) where the strategy does not fit the backbone."""
    reducer.bind(backbone.spec)
    weight = next(p for p in backbone.parameters() if not p.is_meta)
    return reducer.to(device=weight.device, dtype=weight.dtype if weight.is_floating_point() else None)


def attach_reducer(backbone: nn.Module, reducer: Reducer) -> Reducer:
    """Bind `reducer` to `backbone` and make it the one its blocks use, on the device and dtype of the
    backbone's weights and in its train/eval mode. Raises ValueError (from `bind`) where the strategy
    does not fit the backbone, before anything is replaced."""
    fit_reducer(backbone, reducer).train(backbone.training)
    backbone.reducer = reducer
    return reducer


def attach(host: nn.Module, backbone: nn.Module, forward: Callable[..., Any], kind: str) -> None:
    """Register `backbone` on `host` and make `forward` (a function of the host) its forward."""
    if ATTRIBUTE in host._modules or hasattr(type(host), ATTRIBUTE):
        raise ValueError(f"{type(host).__name__} already has an attribute {ATTRIBUTE!r}; cannot patch it")
    record = PatchRecord(host.__dict__.get("forward"), kind)
    backbone.train(host.training)
    host.add_module(ATTRIBUTE, backbone)
    host.__dict__[RECORD] = record
    host.forward = forward.__get__(host, type(host))
    host._register_state_dict_hook(_drop_backbone_keys)
    host.register_load_state_dict_post_hook(_ignore_backbone_keys)


def detach(host: nn.Module) -> nn.Module:
    """Undo `attach`: the host's own forward, no backbone, no hooks."""
    record: PatchRecord = host.__dict__.pop(RECORD)
    del host._modules[ATTRIBUTE]
    del host.__dict__["forward"]
    if record.instance_forward is not None:
        host.__dict__["forward"] = record.instance_forward
    for hooks in (host._state_dict_hooks, host._load_state_dict_post_hooks):
        for key in [k for k, hook in hooks.items() if getattr(hook, "__func__", hook) in _HOOKS]:
            del hooks[key]
    return host


def _drop_backbone_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """State-dict hook: the backbone's entries are the host's own tensors under other names; only a
    reducer's parameters are its own."""
    own = prefix + ATTRIBUTE + "."
    for key in [k for k in state_dict if k.startswith(own) and not k.startswith(own + "reducer.")]:
        del state_dict[key]


def _ignore_backbone_keys(module: nn.Module, incompatible: Any) -> None:
    """Load post-hook: the backbone's entries are never in a state dict (see `_drop_backbone_keys`)."""
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if not _OWN_KEYS.search(k)]


_HOOKS = (_drop_backbone_keys, _ignore_backbone_keys)


def device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
