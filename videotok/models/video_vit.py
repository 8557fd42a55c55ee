"""One video ViT for TimeSformer (divided space-time attention, per-frame patches) and ViViT model 1
(joint attention, tubelet embedding). Tokens travel between blocks as a TokenState with an explicit
(T, H, W) grid, and a reducer decides at each block what to merge.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from videotok.models.base import VideoBackbone
from videotok.reduce.state import TokenState

ATTENTIONS = ("divided", "joint")
POSITIONS = ("separable", "joint")


class VideoViT(VideoBackbone):
    """TimeSformer (attention="divided", tubelet_size=1) or ViViT model 1 (attention="joint").

    positions="separable": the image ViT's spatial position embedding plus a separate time embedding
    (TimeSformer, and ViViT inflated from an image ViT); "joint": one learned table over every
    tubelet, `pos_embed` [1, 1 + T'H'W', C], as the published ViViT checkpoints have. Other
    arguments: the base class's (VideoBackbone)."""

    position_params = ("pos_embed", "time_embed")

    def __init__(self, attention: str = "divided", tubelet_size: int = 1, positions: str = "separable",
                 **kwargs: Any) -> None:
        if attention not in ATTENTIONS:
            raise ValueError(f"attention={attention!r}: choose 'divided' (TimeSformer) or 'joint' (ViViT)")
        if positions not in POSITIONS:
            raise ValueError(f"positions={positions!r}: choose 'separable' (space + time) or 'joint'")
        self.positions = positions
        super().__init__(tubelet_size=tubelet_size, block_attention=attention, **kwargs)
        self.attention = attention

    def add_embeddings(self) -> None:
        """The CLS token and positions. Separable: time_embed, zeroed by image-weight loading; from
        scratch it is random like pos_embed (position_params): zero would make the first steps blind
        to frame order (the model starts invariant to shuffling frames), which measurably slowed
        learning motion on the synthetic set."""
        super().add_embeddings()
        t, h, w = self.grid
        if self.positions == "joint":
            self.pos_embed = nn.Parameter(torch.zeros(1, 1 + t * h * w, self.embed_dim))
        else:
            self.time_embed = nn.Parameter(torch.zeros(1, t, self.embed_dim))

    def embed(self, video: Tensor) -> TokenState:
        x = self.patch_tokens(video)  # [B, T', H'W', C]
        b, t, hw, c = x.shape
        if self.positions == "joint":
            x = x + self.pos_embed[:, 1:].reshape(1, t, hw, c)
        else:
            x = x + self.pos_embed[:, None, 1:] + self.time_embed[:, :, None]
        return self.with_cls(x.reshape(b, t * hw, c), self.grid)  # [B, 1 + T'H'W', C]
