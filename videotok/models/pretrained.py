"""Initialise video backbones from image ViT/DeiT weights (timm key names), inflating 2D to video.

- patch_embed.proj [C, 3, p, p] -> [C, 3, kt, p, p] by central-frame initialisation (ViViT): the
  2D kernel sits at the central tubelet frame, zeros elsewhere, so a static video embeds as an image.
- pos_embed is resampled when the patch grid differs; time_embed is set to zero, so every frame
  starts as the image model sees it (from scratch it is random: see VideoViT._init_weights).
- TimeSformer's temporal branch copies the block's spatial attention and norm (the paper's init).
- the classifier is kept only when its shape matches (same number of classes).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


def read_state_dict(path: Union[str, Path]) -> dict[str, Tensor]:
    """A state dict from a local .safetensors or torch file (plain, or nested under model/state_dict)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights {str(path)!r} not found; give a local timm ViT/DeiT state dict")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "model_state"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    return {k.removeprefix("module."): v for k, v in state.items()}


def timm_state_dict(model_name: str) -> dict[str, Tensor]:
    """timm's own weights for `model_name` (needs its hub to be reachable)."""
    import timm

    return timm.create_model(model_name, pretrained=True).state_dict()


def inflate_patch_embed(weight: Tensor, tubelet_size: int) -> Tensor:
    """[C, 3, p, p] -> [C, 3, kt, p, p], the 2D kernel at the central frame."""
    if weight.ndim == 5:
        return weight
    out = weight.new_zeros(*weight.shape[:2], tubelet_size, *weight.shape[2:])
    out[:, :, tubelet_size // 2] = weight
    return out


def convert_image_state(image_state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Map an image ViT state dict onto `model`'s names and shapes."""
    from timm.layers import resample_abs_pos_embed

    target = model.state_dict()
    out: dict[str, Tensor] = {}
    for key, value in image_state.items():
        if key == "patch_embed.proj.weight":
            value = inflate_patch_embed(value, target[key].shape[2])
        elif key == "pos_embed" and value.shape != target[key].shape:
            h, w = model.grid[1:]
            value = resample_abs_pos_embed(value, new_size=(h, w), num_prefix_tokens=1)
        if key in target and value.shape == target[key].shape:
            out[key] = value
        elif key in target:
            log.info("not loading %s: shape %s does not fit %s", key, tuple(value.shape), tuple(target[key].shape))
    if "time_embed" in target and "time_embed" not in out:
        out["time_embed"] = torch.zeros_like(target["time_embed"])
    # TimeSformer: temporal attention starts as a copy of the spatial one
    for key in target:
        if ".temporal_attn." in key or ".temporal_norm1." in key:
            spatial = key.replace("temporal_attn.", "attn.").replace("temporal_norm1.", "norm1.")
            if spatial in out:
                out[key] = out[spatial].clone()
    return out


def load_image_weights(model: nn.Module, source: str) -> dict[str, list[str]]:
    """Load `source` (a file, or `timm:<name>`) into `model`; returns what stayed initialised."""
    if source.startswith("timm:"):
        image_state = timm_state_dict(source.removeprefix("timm:"))
    else:
        image_state = read_state_dict(source)
    converted = convert_image_state(image_state, model)
    if "patch_embed.proj.weight" not in converted or not any(k.startswith("blocks.") for k in converted):
        raise ValueError(
            f"{source!r} does not look like a timm ViT/DeiT state dict of this width "
            f"(no matching patch_embed / blocks keys)"
        )
    result = model.load_state_dict(converted, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("reducer.")]
    log.info("loaded %d tensors from %s; %d left initialised: %s", len(converted), source, len(missing), missing[:8])
    return {"missing": missing, "unexpected": list(result.unexpected_keys)}
