"""Test-time preprocessing of published checkpoints in videotok's convention, from a transformers
image/video processor config where one is saved, else from the family's published protocol.

transformers computes `((x * rescale_factor + offset) - image_mean) / image_std` on 0..255 pixels
(offset -1 with ViViT's `offset`, else 0); we compute `(x / 255 - mean) / std`. They agree for every
x when std = image_std / (255 * rescale_factor) and mean = (image_mean - offset) / (255 * rescale_factor).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

from videotok.models.published.checkpoint import Preprocessing

ROUND = 12  # digits kept of derived values: removes 1/255 round-off (0.45000000000000007 -> 0.45)


def triple(value: Any) -> tuple[float, float, float]:
    values = [float(value)] * 3 if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) != 3:
        raise ValueError(f"expected 3 channel values, got {value!r}")
    return (values[0], values[1], values[2])


def processor_type(cfg: dict[str, Any]) -> str:
    keys = ("image_processor_type", "video_processor_type", "feature_extractor_type")
    return str(next((cfg[k] for k in keys if cfg.get(k)), ""))


def offsets(cfg: dict[str, Any]) -> bool:
    """Whether the rescale subtracts 1 (ViViT's processors: `offset`, on by default there)."""
    return bool(cfg.get("do_rescale", True) and cfg.get("offset", "vivit" in processor_type(cfg).lower()))


def equivalent_normalisation(cfg: dict[str, Any], where: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) after /255 that reproduce the processor's rescale, offset and normalisation."""
    missing = [k for k in ("image_mean", "image_std") if cfg.get("do_normalize", True) and k not in cfg]
    if missing:
        raise ValueError(f"{where}: the processor config has do_normalize but no {', '.join(missing)}")
    rescale = float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0
    offset = -1.0 if offsets(cfg) else 0.0
    if cfg.get("do_normalize", True):
        image_mean, image_std = triple(cfg["image_mean"]), triple(cfg["image_std"])
    else:
        image_mean, image_std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    unit = 255.0 * rescale
    mean = tuple(round((m - offset) / unit, ROUND) for m in image_mean)
    std = tuple(round(s / unit, ROUND) for s in image_std)
    return mean, std


def edge(value: Any, name: str) -> tuple[Optional[int], bool]:
    """A processor size (int, {"shortest_edge"}, or {"height", "width"}) -> (pixels, square resize?)."""
    if value is None:
        return None, False
    if isinstance(value, (int, float)):
        return int(value), False
    if "shortest_edge" in value:
        return int(value["shortest_edge"]), False
    if "height" in value and "width" in value:
        if int(value["height"]) != int(value["width"]):
            raise ValueError(f"{name} {value}: only square sizes are supported")
        return int(value["height"]), True
    raise ValueError(f"{name} {value}: expected shortest_edge or height and width")


def from_processor(cfg: dict[str, Any], published: Preprocessing, img_size: int,
                   where: str) -> tuple[Preprocessing, list[str]]:
    """`published` (the family protocol, frames already from the model) with the resize, crop and
    normalisation a processor config saved with the checkpoint states; notes say what was read."""
    notes: list[str] = []
    mean, std = equivalent_normalisation(cfg, where)
    crop, _ = edge(cfg.get("crop_size"), "crop_size") if cfg.get("do_center_crop", True) else (None, False)
    short, square = edge(cfg.get("size"), "size") if cfg.get("do_resize", True) else (None, False)
    if crop is None:
        crop = img_size
        notes.append(f"crop_size {crop}: the model's image size (the processor config states no crop)")
    elif crop != img_size:
        notes.append(f"the processor crops {crop} px but the model takes {img_size}: crop_size {img_size}")
        crop = img_size
    if short is None:
        short = crop
        notes.append(f"short_side {short}: the crop size (the processor does not resize)")
    elif square:
        notes.append(f"the processor resizes to a {short}x{short} square; we keep the aspect ratio, short side {short}")
    notes.append(f"short_side {short}, crop_size {crop}, mean {mean}, std {std}: read from {where}")
    return replace(published, short_side=short, crop_size=crop, mean=mean, std=std), notes
