"""Transformer block over a TokenState: joint attention, or TimeSformer's divided space-time attention
while the tokens still form the full grid. Parameter names follow timm's ViT Block (plus TimeSformer's
temporal_norm1 / temporal_attn / temporal_fc), so image checkpoints load by name.
"""
from __future__ import annotations

from typing import Optional, Protocol

import torch
from timm.layers import DropPath, LayerScale, Mlp
from torch import Tensor, nn

from videotok.layers.attention import Attention, AttnInfo, AttnRequest
from videotok.reduce.state import TokenState


class ReductionHook(Protocol):
    """What a block calls around its attention (a videotok Reducer is one): `request` before it,
    `reduce` between attention and MLP when something was requested."""

    def request(self, layer: int, state: TokenState) -> Optional[AttnRequest]: ...

    def reduce(self, state: TokenState, info: AttnInfo, layer: int) -> TokenState: ...


class Block(nn.Module):
    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        init_values: Optional[float] = None,
        divided: bool = False,
        proportional: bool = True,
    ):
        super().__init__()
        self.divided = divided
        self.proportional = proportional
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, proj_drop)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if divided:
            self.temporal_norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.temporal_attn = Attention(dim, num_heads, qkv_bias, attn_drop, proj_drop)
            self.temporal_fc = nn.Linear(dim, dim)

    def _sizes(self, state: TokenState) -> Optional[Tensor]:
        return state.size if (self.proportional and state.merged) else None

    def attend(self, state: TokenState, request: Optional[AttnRequest]) -> tuple[TokenState, Optional[AttnInfo]]:
        """Attention half of the block: divided while the grid holds (and the block has a temporal
        branch), joint otherwise, reusing the spatial attention weights."""
        if self.divided and state.grid is not None:
            return self._divided(state, request)
        delta, info = self.attn(self.norm1(state.x), self._sizes(state), request, state.num_prefix)
        return state.replace(x=state.x + self.drop_path1(self.ls1(delta))), info

    def feed_forward(self, state: TokenState) -> TokenState:
        return state.replace(x=state.x + self.drop_path2(self.ls2(self.mlp(self.norm2(state.x)))))

    def forward(self, state: TokenState, reducer: Optional[ReductionHook] = None, layer: int = 0) -> TokenState:
        request = reducer.request(layer, state) if reducer is not None else None
        state, info = self.attend(state, request)
        if request is not None:
            state = reducer.reduce(state, info, layer)
        return self.feed_forward(state)

    def cross_layer(self, queries: Tensor, context: Tensor) -> Tensor:
        """This block as one pre-norm layer whose `queries` [B, Nq, C] attend to `context` [B, Nk, C]
        (plain attention, its own weights): semantic tokens are recovered this way."""
        delta = self.attn.cross(self.norm1(queries), self.norm1(context))
        x = queries + self.drop_path1(self.ls1(delta))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    def _divided(self, state: TokenState, request: Optional[AttnRequest]) -> tuple[TokenState, Optional[AttnInfo]]:
        """TimeSformer: temporal attention per location over T, then spatial attention per frame with
        the prefix tokens copied into every frame and averaged back."""
        t, h, w = state.grid
        hw, p = h * w, state.num_prefix
        x = state.x
        b, _, c = x.shape
        prefix, patches = x[:, :p], x[:, p:]
        sizes = self._sizes(state)

        # temporal: [B, T*HW, C] -> [B*HW, T, C]
        xt = patches.reshape(b, t, hw, c).transpose(1, 2).reshape(b * hw, t, c)
        size_t = None if sizes is None else sizes[:, p:].reshape(b, t, hw).transpose(1, 2).reshape(b * hw, t)
        res_t, _ = self.temporal_attn(self.temporal_norm1(xt), size_t, None, 0)
        res_t = self.temporal_fc(res_t).reshape(b, hw, t, c).transpose(1, 2).reshape(b, t * hw, c)
        patches = patches + self.drop_path1(res_t)

        # spatial: [B, T*HW, C] -> [B*T, P+HW, C], prefix copied into each frame
        xs = torch.cat([prefix.unsqueeze(1).expand(b, t, p, c), patches.reshape(b, t, hw, c)], dim=2)
        xs = xs.reshape(b * t, p + hw, c)
        size_s = None
        if sizes is not None:
            size_s = torch.cat([sizes[:, :p].unsqueeze(1).expand(b, t, p), sizes[:, p:].reshape(b, t, hw)], dim=2)
            size_s = size_s.reshape(b * t, p + hw)
        res_s, info = self.attn(self.norm1(xs), size_s, request, p)
        res_s = res_s.reshape(b, t, p + hw, c)
        res = torch.cat([res_s[:, :, :p].mean(dim=1), res_s[:, :, p:].reshape(b, t * hw, c)], dim=1)
        x = torch.cat([prefix, patches], dim=1) + self.drop_path1(self.ls1(res))
        return state.replace(x=x), (self._frames_to_video(info, b, t, p) if info is not None else None)

    @staticmethod
    def _frames_to_video(info: AttnInfo, b: int, t: int, p: int) -> AttnInfo:
        """Per-frame attention info [B*T, P+HW, ...] -> per-video [B, P+T*HW, ...]: prefix entries are
        averaged over frames; patch scores are divided by T so a row still sums to about one."""

        def merge(v: Optional[Tensor], scale_patches: bool) -> Optional[Tensor]:
            if v is None:
                return None
            v = v.reshape(b, t, *v.shape[1:])  # [B, T, P+HW, ...]
            patches = v[:, :, p:].reshape(b, -1, *v.shape[3:])
            if scale_patches:
                patches = patches / t
            return torch.cat([v[:, :, :p].mean(dim=1), patches], dim=1)

        return AttnInfo(
            keys=merge(info.keys, False),
            cls_attn=merge(info.cls_attn, True),
            received_attn=merge(info.received_attn, True),
        )
