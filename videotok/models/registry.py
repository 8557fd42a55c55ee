"""Backbones by name, timm-style: `create_model("timesformer_base_patch16_224", ...)`.

Each named configuration is a function written out in videotok/models/named.py and registered
there by `@register_model`; importing `videotok.models` imports that file, so every name is known.
A width no name has (a published checkpoint of another size) has a sized name that states it,
`<family>_d<dim>_l<depth>_h<heads>_patch<p>_<img>`: `create_model` builds it from the family's base
model, so a run saved under it rebuilds the same model.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Optional, TypeVar

import torch

from videotok.models.base import VideoBackbone
from videotok.reduce.base import BackboneSpec, Reducer

_MODELS: dict[str, Callable[..., VideoBackbone]] = {}
F = TypeVar("F", bound=Callable[..., VideoBackbone])
_STATED_SIZES = re.compile(r"_patch(\d+)_(\d+)$")  # the patch and image size a name states
_SIZED = re.compile(r"^(?P<family>[a-z][a-z_]*?)_d(?P<embed_dim>\d+)_l(?P<depth>\d+)_h(?P<num_heads>\d+)"
                    r"_patch(?P<patch_size>\d+)_(?P<img_size>\d+)$")
_WIDTH = ("embed_dim", "depth", "num_heads")  # what a sized name states beyond the patch and image size

# Widths of the image ViTs the backbones inflate from (timm's names for the 2D checkpoints).
VIT_TINY = dict(embed_dim=96, depth=6, num_heads=3, img_size=96, patch_size=16)  # for tests and CPU runs
VIT_SMALL = dict(embed_dim=384, depth=12, num_heads=6, img_size=224, patch_size=16)  # ViT-S / DeiT-S
VIT_BASE = dict(embed_dim=768, depth=12, num_heads=12, img_size=224, patch_size=16)  # ViT-B / DeiT-B
VIT_LARGE = dict(embed_dim=1024, depth=24, num_heads=16, img_size=224, patch_size=16)  # ViT-L
VIT_HUGE = dict(embed_dim=1280, depth=32, num_heads=16, img_size=224, patch_size=16)  # ViT-H


def register_model(fn: F) -> F:
    """Function decorator: `fn(**overrides)` builds the backbone named `fn.__name__`."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def named(name: str, *defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments of model `name`: its defaults, later ones winning, then `overrides`;
    `model_name` is the name of what they build (`built_name`)."""
    merged: dict[str, Any] = {}
    for part in defaults:
        merged.update(part)
    args = {**merged, **overrides}
    if any(k in merged and args.get(k) != merged[k] for k in _WIDTH) and _STATED_SIZES.search(name):
        return {**args, "model_name": sized_name(family_of(name), **{k: args[k] for k in (*_WIDTH, "patch_size",
                                                                                           "img_size")})}
    return {**args, "model_name": built_name(name, args.get("patch_size"), args.get("img_size"))}


def sized_name(family: str, embed_dim: int, depth: int, num_heads: int, patch_size: int, img_size: int) -> str:
    """The name stating a width no registered name has: `videomae_d384_l1_h6_patch16_224`."""
    return f"{family}_d{embed_dim}_l{depth}_h{num_heads}_patch{patch_size}_{img_size}"


def family_of(name: str) -> str:
    """`videomae_base_patch16_224` -> `videomae`, `vivit_fe_small_patch16_224` -> `vivit_fe`."""
    sized = _SIZED.match(name)
    if sized:
        return sized["family"]
    return _STATED_SIZES.sub("", name).rsplit("_", 1)[0]


def _sized_model(name: str) -> Optional[tuple[str, dict[str, int]]]:
    """(the family's base model, the sizes `name` states) for a sized name, else None."""
    sized = _SIZED.match(name)
    if sized is None:
        return None
    base = f"{sized['family']}_base_patch16_224"
    if base not in _MODELS:
        return None
    return base, {k: int(v) for k, v in sized.groupdict().items() if k != "family"}


def built_name(name: str, patch_size: Optional[int], img_size: Optional[int]) -> str:
    """`name` with the patch and image size the model is built with, where the name states them
    (`_patch16_224`): `timesformer_small_patch16_224` with patch_size=14 is reported (flops,
    evaluate, compare) as `timesformer_small_patch14_224`, and with img_size=448 as
    `..._patch16_448`, never under a name whose configuration it lacks. The family prefix stays, so
    what reads it (default views) is unaffected; names stating no sizes (`*_tiny`) are kept."""
    match = _STATED_SIZES.search(name)
    if match is None or patch_size is None or img_size is None:
        return name
    return f"{name[: match.start()]}_patch{patch_size}_{img_size}"


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(
    name: str,
    reducer: Optional[Reducer] = None,
    pretrained: Optional[str] = None,
    **overrides: Any,
) -> VideoBackbone:
    """Build backbone `name` with `overrides` (num_classes, num_frames, img_size, tubelet_size, ...).

    `pretrained`: a local timm ViT/DeiT state dict (.pth/.pt/.bin or .safetensors), inflated to video,
    or `timm:<model name>` to fetch timm's weights where the hub is reachable.
    """
    sized = _sized_model(name) if name not in _MODELS else None
    if sized is not None:
        base, sizes = sized
        clash = [f"{k}={overrides[k]} (the name says {v})" for k, v in sizes.items() if overrides.get(k, v) != v]
        if clash:
            raise ValueError(f"model {name!r} states its sizes; the overrides contradict it: {', '.join(clash)}")
        model = _MODELS[base](reducer=reducer, **{**overrides, **sizes})
    elif name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())} "
                         "(or a sized name, <family>_d<dim>_l<depth>_h<heads>_patch<p>_<img>)")
    else:
        model = _MODELS[name](reducer=reducer, **overrides)
    if pretrained:
        from videotok.models.pretrained import load_image_weights

        load_image_weights(model, pretrained)
    return model


def model_spec(name: str, **overrides: Any) -> BackboneSpec:
    """The BackboneSpec `create_model(name, **overrides)` binds its reducer to, without making any
    weights: the model is built on the meta device, so the spec comes from the one constructor."""
    with torch.device("meta"):
        return create_model(name, **overrides).spec
