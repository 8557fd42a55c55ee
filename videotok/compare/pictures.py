"""`compare --visualize`: the same test clip drawn through every row's model (videotok.visualize),
one picture per row folder, shown side by side in the report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from videotok.evaluate.predict import datamodule_preprocessing, decode_views
from videotok.flops import full_token_cost, measure_cost
from videotok.visualize import default_blocks, header, token_picture, write_picture

PICTURE_FILE = "tokens.png"


def picture_clip(datamodule: Any, split: str) -> tuple[str, Tensor]:
    """(path, centre view [C, T, H, W]) of the split's first video, decoded as evaluation decodes it."""
    path = datamodule.video_path(split, 0)
    preprocessing = datamodule_preprocessing(datamodule, views=(1, 1))
    return path, decode_views(path, preprocessing, datamodule.decoder, datamodule.fallback_decoder)[0]


def draw_row(model: nn.Module, clip: Tensor, video: str, datamodule: Any, path: Path) -> None:
    """`model`'s token picture of `clip` at the blocks where its token count drops, and the last."""
    cost, full = measure_cost(model), full_token_cost(model)
    lines = header(model, Path(video).name, cost, full)
    picture = token_picture(model, clip.to(next(model.parameters()).device), datamodule.mean, datamodule.std,
                            default_blocks(cost.tokens_per_block), lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_picture(picture.grid(), picture.animation(), path)
