"""`compare --visualize`: the same test clip drawn through every row's model (videotok.visualize),
one picture per row folder, shown side by side in the report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from videotok.evaluate.predict import centre_view, datamodule_preprocessing
from videotok.visualize import caption, token_picture, write_picture

PICTURE_FILE = "tokens.png"


def picture_clip(datamodule: Any, split: str) -> tuple[str, Tensor]:
    """(path, centre view [C, T, H, W]) of the split's first video, decoded as evaluation decodes it."""
    path = datamodule.video_path(split, 0)
    return path, centre_view(path, datamodule_preprocessing(datamodule), datamodule.decoder,
                             datamodule.fallback_decoder)


def draw_row(model: nn.Module, clip: Tensor, video: str, datamodule: Any, path: Path) -> None:
    """`model`'s token picture of `clip` at the blocks where its token count drops, and the last."""
    lines, blocks = caption(model, Path(video).name)
    picture = token_picture(model, clip.to(next(model.parameters()).device), datamodule.mean, datamodule.std,
                            blocks, lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_picture(picture.grid(), picture.animation(), path)
