"""Token reduction patched into models users already hold: `videotok.patch(model, "tome", r=8)`.

Works on transformers' TimesformerForVideoClassification, VivitForVideoClassification and
VideoMAEForVideoClassification, and timm's VisionTransformer. The model keeps its class, its
modules, its parameters (the same tensors: training the patched model trains them), its forward's
signature and its output type; its forward runs videotok's backbone built on those parameters with
the reducer at each block. `unpatch(model)` restores the original forward exactly.
"""
from __future__ import annotations

from typing import Any, Union

from torch import nn

from videotok.patching import timm_vit, transformers_video
from videotok.patching.host import attach, attach_reducer, backbone_of, detach, is_patched
from videotok.reduce.base import Reducer
from videotok.reduce.registry import build_reducer

__all__ = ["backbone_of", "is_patched", "patch", "supported", "unpatch"]

ADAPTERS = {
    "transformers": transformers_video,
    "timm": timm_vit,
}


def supported() -> list[str]:
    """The model classes `patch` accepts."""
    return [*transformers_video.CLASSES, "timm VisionTransformer"]


def patch(model: nn.Module, reducer: Union[str, Reducer] = "none", **reducer_args: Any) -> nn.Module:
    """Reduce `model`'s tokens in place with `reducer` (a registered name with its arguments, or a
    built Reducer); returns `model`. Patching a patched model replaces its reduction."""
    adapter = next((a for a in ADAPTERS.values() if a.matches(model)), None)
    if adapter is None:
        raise ValueError(f"videotok.patch does not know {type(model).__module__}.{type(model).__name__}; "
                         f"supported: {', '.join(supported())}")
    if isinstance(reducer, str):
        reducer = build_reducer(reducer, **reducer_args)
    elif reducer_args:
        raise ValueError("reducer arguments go with a reducer name, not with a built Reducer")
    if is_patched(model):
        attach_reducer(backbone_of(model), reducer)
        return model
    backbone = adapter.build_backbone(model)
    backbone.train(model.training)
    attach_reducer(backbone, reducer)  # refuses a reducer that does not fit before the model changes
    attach(model, backbone, adapter.make_forward(model), type(model).__name__)
    return model


def unpatch(model: nn.Module) -> nn.Module:
    """Undo `patch`: the original forward, no videotok module; returns `model`."""
    if not is_patched(model):
        raise ValueError(f"{type(model).__name__} is not patched")
    return detach(model)
