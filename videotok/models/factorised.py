"""ViViT model 2, the factorised encoder, composed of two encoders: the base class's spatial encoder
runs on each tubelet-frame alone (reducers act inside it, image-style, each frame being its own
sample), then a temporal encoder runs over the per-frame pooled tokens behind its own CLS token.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from videotok.flops import BlockInput
from videotok.models.base import VideoBackbone, make_blocks
from videotok.reduce.state import TokenState


class FactorisedViViT(VideoBackbone):
    """The spatial encoder is the backbone's own (`blocks`, `norm`, reducer-driven, grid (1, H', W'));
    the temporal encoder (`temporal_*`, `temporal_depth` blocks) sees one token per tubelet-frame
    and no reducer. Other arguments: the base class's (VideoBackbone)."""

    frames_as_samples = True
    position_params = ("pos_embed", "temporal_pos_embed")
    token_params = ("cls_token", "temporal_cls_token")

    def __init__(self, temporal_depth: int = 4, tubelet_size: int = 2, **kwargs: Any) -> None:
        super().__init__(tubelet_size=tubelet_size, neck_depth=temporal_depth, **kwargs)
        self.attention, self.temporal_depth = "factorised", temporal_depth

    def build_neck(self, drop_path: list[float], block_args: dict) -> None:
        """The temporal encoder; plain joint attention (its tokens are never merged)."""
        dim = self.embed_dim
        self.temporal_cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.temporal_pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0], dim))
        self.temporal_blocks = make_blocks(dim, self.num_heads, drop_path, **block_args)
        self.temporal_norm = nn.LayerNorm(dim, eps=1e-6)

    def embed(self, video: Tensor) -> TokenState:
        """Each tubelet-frame becomes its own sample: [B*T', 1 + H'W', C] with grid (1, H', W')."""
        x = self.patch_tokens(video) + self.pos_embed[:, None, 1:]  # [B, T', H'W', C]
        b, t, hw, c = x.shape
        return self.with_cls(x.reshape(b * t, hw, c), self.block_grid)

    def forward_features(self, video: Tensor, trace: Optional[list[int]] = None,
                         blocks: Optional[list[BlockInput]] = None) -> Tensor:
        """Spatial encoder per frame, pooled per frame, then the temporal encoder, pooled per video;
        `trace` records the spatial encoder's tokens per video (frames x tokens per frame)."""
        b, t = video.shape[0], self.grid[0]
        frames = self.pool(self.forward_tokens(video, trace, blocks)).reshape(b, t, -1)  # [B*T', C] -> [B, T', C]
        cls = self.temporal_cls_token.expand(b, -1, -1)
        x = torch.cat([cls, frames], dim=1) + self.temporal_pos_embed  # [B, 1 + T', C]
        state = TokenState.from_grid(x, (t, 1, 1), num_prefix=1, places=False)  # joint temporal blocks
        for block in self.temporal_blocks:
            state = block(state)
        return self.pool(state.replace(x=self.temporal_norm(state.x)))
