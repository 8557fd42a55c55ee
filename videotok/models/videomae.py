"""VideoMAE's video ViT (Tong et al. 2022): joint attention over 2 x 16 x 16 tubelets, a fixed
sinusoidal position table, no CLS token, the mean of the tokens normalised by `fc_norm` before the
head. With no CLS token, reducers rank tokens by the attention they receive.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from videotok.flops import BlockInput
from videotok.models.base import VideoBackbone
from videotok.reduce.state import TokenState


def sinusoid_table(positions: int, dim: int) -> Tensor:
    """[1, positions, dim]: sin on even, cos on odd channels, channel pair i at wavelength
    10000^(2i/dim) (computed in float64, as the published models were)."""
    position = torch.arange(positions, dtype=torch.float64)[:, None]  # [N, 1]
    pair = torch.arange(dim, dtype=torch.float64) // 2  # [C]
    angle = position / torch.pow(10000.0, 2 * pair / dim)  # [N, C]
    table = torch.where(torch.arange(dim) % 2 == 0, angle.sin(), angle.cos())
    return table.float()[None]


class VideoMAE(VideoBackbone):
    """The VideoMAE encoder as fine-tuned for classification. The query and value biases of the
    published models are the `qkv` bias with a zero key part: a key bias adds the same amount to
    every logit of a query, so it never changes attention (nor gets a gradient through it).
    `fc_norm_eps` (default: `norm_eps`) exists because transformers' port uses 1e-5 there and its
    config's eps in the blocks. global_pool: "avg" only (there is no CLS token to pool).

    `mean_pooling` False is the authors' `use_mean_pooling=False`: no fc_norm; the final `norm`
    runs over the tokens and the first one is the readout. With no CLS token that is the first
    tubelet's token (after a reducer, whichever token comes first). Other arguments: the base
    class's (VideoBackbone)."""

    num_prefix = 0
    position_params = ()
    token_params = ()

    def __init__(self, tubelet_size: int = 2, fc_norm_eps: Optional[float] = None, global_pool: str = "avg",
                 mean_pooling: bool = True, **kwargs: Any) -> None:
        self.fc_norm_eps, self.mean_pooling = fc_norm_eps, mean_pooling
        super().__init__(tubelet_size=tubelet_size, block_attention="joint", global_pool=global_pool, **kwargs)
        self.attention = "joint"

    def add_embeddings(self) -> None:
        """No CLS token; the fixed position table is a buffer, not saved (it is the same for every model)."""
        t, h, w = self.grid
        self.register_buffer("pos_table", sinusoid_table(t * h * w, self.embed_dim), persistent=False)

    def build_neck(self, drop_path: list[float], block_args: dict) -> None:
        """Mean pooling replaces the final norm: `norm` is the identity, `fc_norm` follows the mean
        (without mean pooling the final norm stays and there is no fc_norm)."""
        if not self.mean_pooling:
            return
        self.norm = nn.Identity()
        eps = block_args["norm_eps"] if self.fc_norm_eps is None else self.fc_norm_eps
        self.fc_norm = nn.LayerNorm(self.embed_dim, eps=eps)

    def embed(self, video: Tensor) -> TokenState:
        x = self.patch_tokens(video)  # [B, T', H'W', C]
        b, t, hw, c = x.shape
        x = x.reshape(b, t * hw, c) + self.pos_table.to(x.dtype)  # [B, T'H'W', C]
        return TokenState.from_grid(self.pos_drop(x), self.grid, num_prefix=0, places=self.places_tokens)

    def forward_features(self, video: Tensor, trace: Optional[list[int]] = None,
                         blocks: Optional[list[BlockInput]] = None) -> Tensor:
        """The size-weighted mean of the tokens (the mean over the original tubelets), then fc_norm;
        without mean pooling, the first normalised token."""
        if not self.mean_pooling:
            return self.forward_tokens(video, trace, blocks).x[:, 0]
        return self.fc_norm(self.pool(self.forward_tokens(video, trace, blocks)))
