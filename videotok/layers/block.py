"""Transformer block over a TokenState: joint attention, or TimeSformer's divided space-time attention,
on the full grid (reshapes) or on merged tokens (placed by `TokenState.owner`, videotok.layers.placement).
Parameter names follow timm's ViT Block (plus TimeSformer's temporal_norm1 / temporal_attn /
temporal_fc), so image checkpoints load by name.
"""
from __future__ import annotations

from functools import partial
from typing import Optional, Protocol

import torch
from timm.layers import DropPath, LayerScale, Mlp
from torch import Tensor, nn

from videotok.layers.attention import Attention, AttnInfo, AttnRequest, CosineAttention
from videotok.layers.placement import layout, static_layout
from videotok.reduce.state import TokenState


class ReductionHook(Protocol):
    """What a block calls around its attention (a videotok Reducer is one): `request` before it,
    `reduce` between attention and MLP when something was requested."""

    def request(self, layer: int, state: TokenState) -> Optional[AttnRequest]: ...

    def reduce(self, state: TokenState, info: AttnInfo, layer: int) -> TokenState: ...


# activation name -> module class: exact GELU (timm, TimeSformer, VideoMAE) or its tanh
# approximation (the published ViViT, transformers' "gelu_fast" / "gelu_pytorch_tanh")
ACTIVATIONS = {"gelu": nn.GELU, "gelu_tanh": partial(nn.GELU, approximate="tanh")}


def activation(name: str) -> type[nn.Module]:
    if name not in ACTIVATIONS:
        raise ValueError(f"act_layer={name!r}: choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


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
        norm_eps: float = 1e-6,
        act_layer: str = "gelu",
        cos_attn: bool = False,
    ):
        super().__init__()
        attention = CosineAttention if cos_attn else Attention  # cos_attn: VideoMAE V2's cosine attention
        self.divided = divided
        # False only for checkpoints trained before merged tokens kept divided attention (see
        # VideoClassifier.on_load_checkpoint): they learned joint attention after a merge.
        self.divided_after_merge = True
        self.proportional = proportional
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = attention(dim, num_heads, qkv_bias, attn_drop, proj_drop)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=activation(act_layer), drop=proj_drop)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if divided:
            self.temporal_norm1 = nn.LayerNorm(dim, eps=norm_eps)
            self.temporal_attn = attention(dim, num_heads, qkv_bias, attn_drop, proj_drop)
            self.temporal_fc = nn.Linear(dim, dim)

    def _sizes(self, state: TokenState) -> Optional[Tensor]:
        return state.weight if (self.proportional and state.merged) else None

    def attend(self, state: TokenState, request: Optional[AttnRequest]) -> tuple[TokenState, Optional[AttnInfo]]:
        """Attention half of the block: divided when the block has a temporal branch (on the grid by
        reshapes, on merged tokens by their places), joint otherwise. Only tokens without places
        (semantic tokens, owner None) make a divided block fall back to joint attention with its
        spatial weights."""
        if self.divided and state.grid is not None:
            return self._divided(state, request)
        if self.divided and state.owner is not None and self.divided_after_merge:
            return self._divided_placed(state, request)
        delta, info = self.attn(self.norm1(state.x), self._sizes(state), request, state.num_prefix, state.valid)
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

    def _divided_placed(self, state: TokenState, request: Optional[AttnRequest]) -> tuple[TokenState, Optional[AttnInfo]]:
        """Divided attention on merged tokens: temporal attention over the token at each token's place
        in every frame, then spatial attention among the tokens of each frame (padded to the fullest
        frame and masked), the prefix joining every frame and averaged over the frames that have
        tokens. The same weights and order as `_divided`; the same result on the full grid. The
        tokens' Layout is computed by the first block after a reduction and kept on the state."""
        p = state.num_prefix
        placed = state.layout
        if placed is None:
            patch_valid = None if state.valid is None else state.valid[:, p:]  # False for padding (rlt)
            static = static_layout(state.padded, state.x.device)
            per_frame = None if state.frames is None else state.num_patches // state.frames
            placed = layout(state.owner, state.pos[:, p:], p, patch_valid, static=static, per_frame=per_frame,
                            whole=not state.discarded)
        prefix, patches = state.x[:, :p], state.x[:, p:]
        res_t = self.temporal_attn.over_places(self.temporal_norm1(patches), placed)
        x = torch.cat([prefix, patches + self.drop_path1(self.temporal_fc(res_t))], dim=1)
        res, info = self.attn.over_frames(self.norm1(x), placed, self._sizes(state), request, p)
        return state.replace(x=x + self.drop_path1(self.ls1(res)), layout=placed), info

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
            sharpness=merge(info.sharpness, False),
        )
