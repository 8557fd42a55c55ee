"""Initialise video backbones from image ViT/DeiT weights (timm key names), inflating 2D to video.

- patch_embed.proj [C, 3, p, p] -> [C, 3, kt, p, p] by central-frame initialisation (ViViT): the
  2D kernel sits at the central tubelet frame, zeros elsewhere, so a static video embeds as an image.
- pos_embed is resampled when the patch grid differs; time_embed is set to zero, so every frame
  starts as the image model sees it (from scratch it is random: see VideoViT._init_weights).
- TimeSformer's temporal branch copies the block's spatial attention and norm (the paper's init).
- the classifier is kept only when its shape matches (same number of classes).
`load_image_weights` reports each tensor as loaded, inflated or new, and refuses a file that fills
little of the model (another family or width).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)
MIN_FILLED = 0.5  # the share of a backbone's tensors an image checkpoint must fill


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


@dataclass
class LoadReport:
    """What an image checkpoint gave a video model: tensors `loaded` as they were, `inflated`
    (patch kernel to a tubelet, positions resized, the temporal branch from the spatial one,
    `time_embed` at zero), `new` (left as initialised: the head of other classes, reducer
    parameters, anything the file lacks) and the file's `skipped` tensors (no such name, or a shape
    that does not fit)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    inflated: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name shape (model: shape)" or "name (no such weight)"

    def summary(self) -> str:
        return (f"model.pretrained {self.source}: {len(self.loaded)} tensors loaded, {len(self.inflated)} inflated, "
                f"{len(self.new)} new" + (f" ({len(self.skipped)} of the file's not used)" if self.skipped else ""))

    def log_names(self) -> None:
        for group in ("loaded", "inflated", "new", "skipped"):
            names = getattr(self, group)
            if names:
                log.info("%s %s (%d): %s", self.source, group, len(names), ", ".join(names))


def convert_image_state(image_state: dict[str, Tensor], model: nn.Module,
                        report: Optional[LoadReport] = None) -> dict[str, Tensor]:
    """Map an image ViT state dict onto `model`'s names and shapes (each tensor's fate in `report`)."""
    from timm.layers import resample_abs_pos_embed

    report = report if report is not None else LoadReport("")
    target = model.state_dict()
    out: dict[str, Tensor] = {}
    for key, value in image_state.items():
        changed = False
        if key not in target:
            report.skipped.append(f"{key} (no such weight)")
            continue
        if key == "patch_embed.proj.weight" and value.ndim == 4:
            value, changed = inflate_patch_embed(value, target[key].shape[2]), True
        elif key == "pos_embed" and value.shape != target[key].shape and value.ndim == 3:
            h, w = model.grid[1:]
            value, changed = resample_abs_pos_embed(value, new_size=(h, w), num_prefix_tokens=1), True
        if value.shape == target[key].shape:
            out[key] = value
            (report.inflated if changed else report.loaded).append(key)
        else:
            report.skipped.append(f"{key} {tuple(value.shape)} (model: {tuple(target[key].shape)})")
    if "time_embed" in target and "time_embed" not in out:
        out["time_embed"] = torch.zeros_like(target["time_embed"])
        report.inflated.append("time_embed")
    # TimeSformer: temporal attention starts as a copy of the spatial one
    for key in target:
        if ".temporal_attn." in key or ".temporal_norm1." in key:
            spatial = key.replace("temporal_attn.", "attn.").replace("temporal_norm1.", "norm1.")
            if spatial in out:
                out[key] = out[spatial].clone()
                report.inflated.append(key)
    return out


def load_image_weights(model: nn.Module, source: str) -> LoadReport:
    """Load `source` (a file, or `timm:<name>`) into `model`; what each tensor became is returned
    and logged by name at info level. A file that fills under MIN_FILLED of the backbone (the
    head and reducer aside) is refused, naming the mismatch: training would otherwise start from
    scratch without a word."""
    if source.startswith("timm:"):
        image_state = timm_state_dict(source.removeprefix("timm:"))
    else:
        image_state = read_state_dict(source)
    report = LoadReport(source)
    converted = convert_image_state(image_state, model, report)
    backbone = [k for k in model.state_dict() if not k.startswith(("head.", "reducer."))]
    filled = [k for k in backbone if k in converted and k != "time_embed"]
    if len(filled) < MIN_FILLED * len(backbone) or "patch_embed.proj.weight" not in converted:
        raise ValueError(mismatch(source, model, image_state, report, len(filled), len(backbone)))
    result = model.load_state_dict(converted, strict=False)
    report.new = list(result.missing_keys)
    report.log_names()
    return report


def mismatch(source: str, model: nn.Module, image_state: dict[str, Tensor], report: LoadReport, filled: int,
             backbone: int) -> str:
    """Why `source` does not fit `model`: how little it fills, and examples of each mismatch."""
    shapes = [s for s in report.skipped if "(model:" in s]
    foreign = [s.split(" ")[0] for s in report.skipped if s.endswith("(no such weight)")]
    parts = [f"{source!r} fills {filled} of the {backbone} backbone tensors of "
             f"{getattr(model, 'model_name', '') or type(model).__name__} (embed_dim {getattr(model, 'embed_dim', '?')})"]
    if shapes:
        parts.append(f"shapes differ: {'; '.join(shapes[:4])}")
    if foreign:
        parts.append(f"names it has that the model lacks: {', '.join(foreign[:4])}")
    if not image_state:
        parts.append("it holds no tensors")
    parts.append("give a timm ViT/DeiT state dict of this width (a published video checkpoint goes to "
                 "model.published instead)")
    return "; ".join(parts)
