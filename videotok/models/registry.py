"""Named backbone configurations, timm-style: `create_model("timesformer_base_patch16_224", ...)`."""
from __future__ import annotations

from typing import Any, Callable, Optional

from torch import nn

from videotok.models.factorised import FactorisedViViT
from videotok.models.video_vit import VideoViT
from videotok.reduce.base import Reducer

_MODELS: dict[str, Callable[..., nn.Module]] = {}

# Widths of the image ViTs the backbones inflate from (timm's names for the 2D checkpoints).
_SIZES = {
    "tiny": dict(embed_dim=96, depth=6, num_heads=3, img_size=96, patch_size=16),  # for tests and CPU runs
    "small": dict(embed_dim=384, depth=12, num_heads=6, img_size=224, patch_size=16),  # ViT-S / DeiT-S
    "base": dict(embed_dim=768, depth=12, num_heads=12, img_size=224, patch_size=16),  # ViT-B / DeiT-B
}
_FAMILIES = {
    "timesformer": (VideoViT, dict(attention="divided", tubelet_size=1, num_frames=8)),
    "vivit": (VideoViT, dict(attention="joint", tubelet_size=2, num_frames=8)),
    "vivit_fe": (FactorisedViViT, dict(tubelet_size=2, num_frames=8)),
}


def _name(family: str, size: str) -> str:
    return f"{family}_{size}" if size == "tiny" else f"{family}_{size}_patch16_224"


def _register(family: str, size: str) -> None:
    cls, family_defaults = _FAMILIES[family]
    name = _name(family, size)
    defaults = {**_SIZES[size], **family_defaults}
    if family == "vivit_fe":
        defaults["temporal_depth"] = 2 if size == "tiny" else 4

    def factory(**overrides: Any) -> nn.Module:
        return cls(**{**defaults, **overrides, "model_name": name})

    factory.__name__ = name
    factory.__doc__ = f"{cls.__name__} with {defaults}"
    _MODELS[name] = factory


for _family in _FAMILIES:
    for _size in _SIZES:
        _register(_family, _size)


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(
    name: str,
    reducer: Optional[Reducer] = None,
    pretrained: Optional[str] = None,
    **overrides: Any,
) -> nn.Module:
    """Build backbone `name` with `overrides` (num_classes, num_frames, img_size, tubelet_size, ...).

    `pretrained`: a local timm ViT/DeiT state dict (.pth/.pt/.bin or .safetensors), inflated to video,
    or `timm:<model name>` to fetch timm's weights where the hub is reachable.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    model = _MODELS[name](reducer=reducer, **overrides)
    if pretrained:
        from videotok.models.pretrained import load_image_weights

        load_image_weights(model, pretrained)
    return model
