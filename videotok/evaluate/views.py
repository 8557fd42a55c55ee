"""How many views a video is scored with: temporal clips x spatial crops ("TxS"). Which views
exist is the data's rule (`check_views`, videotok/data/transforms.py, re-exported here)."""

from __future__ import annotations

import re

from videotok.data.transforms import check_views

# The papers' Kinetics test protocols: TimeSformer 1 clip x 3 crops, ViViT 4 x 3, VideoMAE 5 x 3.
_DEFAULT_VIEWS = (("timesformer", (1, 3)), ("vivit", (4, 3)), ("videomae", (5, 3)))  # "vivit" covers vivit_fe
_VIEWS_PATTERN = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
__all__ = ["check_views", "default_views", "parse_views"]


def default_views(model_name: str) -> tuple[int, int]:
    """(clips, crops) of the model family's paper: (1, 3) TimeSformer, (4, 3) ViViT, (5, 3) VideoMAE."""
    for prefix, views in _DEFAULT_VIEWS:
        if model_name.startswith(prefix):
            return views
    families = ", ".join(prefix for prefix, _ in _DEFAULT_VIEWS)
    raise ValueError(f"no default views for model {model_name!r} (known families: {families}); pass views=TxS")


def parse_views(text: str, option: str = "--views") -> tuple[int, int]:
    """``"2x3"`` -> (2, 3): temporal clips x spatial crops. Errors name ``option``."""
    match = _VIEWS_PATTERN.match(str(text))
    if match is None:
        raise ValueError(f"{option}: expected CLIPSxCROPS such as 1x3 or 4x3, got {text!r}")
    return check_views((int(match[1]), int(match[2])), option)
