"""How many views a video is scored with: temporal clips x spatial crops ("TxS")."""

from __future__ import annotations

import re

# The papers' test protocols: TimeSformer 1 clip x 3 crops, ViViT 4 clips x 3 crops.
_DEFAULT_VIEWS = (("timesformer", (1, 3)), ("vivit", (4, 3)))  # "vivit" also covers vivit_fe
_VIEWS_PATTERN = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def default_views(model_name: str) -> tuple[int, int]:
    """(clips, crops) of the model family's paper: (1, 3) for TimeSformer, (4, 3) for ViViT."""
    for prefix, views in _DEFAULT_VIEWS:
        if model_name.startswith(prefix):
            return views
    families = ", ".join(prefix for prefix, _ in _DEFAULT_VIEWS)
    raise ValueError(f"no default views for model {model_name!r} (known families: {families}); pass views=TxS")


def check_views(views: tuple[int, int], option: str = "views") -> tuple[int, int]:
    """(clips >= 1, crops 1 or 3) as the data module's evaluation transform supports."""
    if len(views) != 2:
        raise ValueError(f"{option} must be (clips, crops), got {views!r}")
    clips, crops = int(views[0]), int(views[1])
    if clips < 1 or crops not in (1, 3):
        raise ValueError(f"{option}: clips must be >= 1 and crops 1 or 3, got {clips}x{crops}")
    return clips, crops


def parse_views(text: str, option: str = "--views") -> tuple[int, int]:
    """``"2x3"`` -> (2, 3): temporal clips x spatial crops. Errors name ``option``."""
    match = _VIEWS_PATTERN.match(str(text))
    if match is None:
        raise ValueError(f"{option}: expected CLIPSxCROPS such as 1x3 or 4x3, got {text!r}")
    return check_views((int(match[1]), int(match[2])), option)
