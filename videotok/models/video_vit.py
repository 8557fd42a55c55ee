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


class VideoViT(VideoBackbone):
    """TimeSformer (attention="divided", tubelet_size=1) or ViViT model 1 (attention="joint"): the
    image ViT's spatial position embedding plus a separate time embedding. Other arguments: the
    base class's (VideoBackbone)."""

    position_params = ("pos_embed", "time_embed")

    def __init__(self, attention: str = "divided", tubelet_size: int = 1, **kwargs: Any) -> None:
        if attention not in ATTENTIONS:
            raise ValueError(f"attention={attention!r}: choose 'divided' (TimeSformer) or 'joint' (ViViT)")
        super().__init__(tubelet_size=tubelet_size, block_attention=attention, **kwargs)
        self.attention = attention

    def add_embeddings(self) -> None:
        """time_embed, zeroed by image-weight loading. From scratch it is random like pos_embed
        (position_params): zero would make the first steps blind to frame order (the model starts
        invariant to shuffling frames), which measurably slowed learning motion on the synthetic set."""
        self.time_embed = nn.Parameter(torch.zeros(1, self.grid[0], self.embed_dim))

    def embed(self, video: Tensor) -> TokenState:
        x = self.tokens(video) + self.time_embed[:, :, None]  # [B, T', H'W', C]
        b, t, hw, c = x.shape
        return self.with_cls(x.reshape(b, t * hw, c), self.grid)  # [B, 1 + T'H'W', C]
