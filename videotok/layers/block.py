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

from videotok.layers.attention import Attention, AttnInfo, AttnRequest
from videotok.layers.placement import FrameBuckets, frame_buckets, place
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
    ):
        super().__init__()
        self.divided = divided
        # False only for checkpoints trained before merged tokens kept divided attention (see
        # VideoClassifier.on_load_checkpoint): they learned joint attention after a merge.
        self.divided_after_merge = True
        self.proportional = proportional
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, proj_drop)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=activation(act_layer), drop=proj_drop)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        if divided:
            self.temporal_norm1 = nn.LayerNorm(dim, eps=norm_eps)
            self.temporal_attn = Attention(dim, num_heads, qkv_bias, attn_drop, proj_drop)
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
        frame and masked), the prefix copied into every frame and averaged over the frames that
        have tokens. The same weights and order as `_divided`; the same result on the full grid."""
        p = state.num_prefix
        x = state.x
        b, _, c = x.shape
        prefix, patches = x[:, :p], x[:, p:]
        n = patches.shape[1]
        frames = state.owner.shape[1]
        sizes = self._sizes(state)
        patch_valid = None if state.valid is None else state.valid[:, p:]  # [B, n], False for padding (rlt)
        placed = place(state.owner, state.pos[:, p:], patch_valid)

        # temporal: each token attends to the T tokens at its place, one per frame
        res_t = self.temporal_attn.over_places(self.temporal_norm1(patches), placed.slots, placed.present, placed.anchor)
        patches = patches + self.drop_path1(self.temporal_fc(res_t))

        # spatial: [B, n, C] -> [B*T, P+M, C], each frame's tokens padded to M, prefix in each frame
        buckets = frame_buckets(placed.frame, frames, patch_valid)  # padding goes to no frame
        m = buckets.index.shape[-1]
        flat = buckets.index.reshape(b, frames * m)  # [B, T*M], padding points at slot n
        spread = flat.unsqueeze(-1).expand(-1, -1, c)
        padded = torch.cat([patches, patches.new_zeros(b, 1, c)], dim=1)  # [B, n+1, C]
        xs = padded.gather(1, spread).reshape(b, frames, m, c)
        xs = torch.cat([prefix.unsqueeze(1).expand(b, frames, p, c), xs], dim=2).reshape(b * frames, p + m, c)
        valid = torch.cat([buckets.valid.new_ones(b, frames, p), buckets.valid], dim=2).reshape(b * frames, p + m)
        size_s = None
        if sizes is not None:
            patch_sizes = torch.cat([sizes[:, p:], sizes.new_ones(b, 1)], dim=1).gather(1, flat).reshape(b, frames, m)
            size_s = torch.cat([sizes[:, :p].unsqueeze(1).expand(b, frames, p), patch_sizes], dim=2)
            size_s = size_s.reshape(b * frames, p + m)
        res_s, info = self.attn(self.norm1(xs), size_s, request, p, valid)
        res_s = res_s.reshape(b, frames, p + m, c)
        occupied = (buckets.count > 0).to(res_s.dtype)  # [B, T]: frames left without tokens do not vote
        res_prefix = (res_s[:, :, :p] * occupied[:, :, None, None]).sum(1) / occupied.sum(1)[:, None, None]
        res_patches = res_s.new_zeros(b, n + 1, c).scatter_add(1, spread, res_s[:, :, p:].reshape(b, frames * m, c))
        res = torch.cat([res_prefix, res_patches[:, :n]], dim=1)
        x = torch.cat([prefix, patches], dim=1) + self.drop_path1(self.ls1(res))
        if info is not None:
            info = self._buckets_to_video(info, buckets, occupied, p, n)
        return state.replace(x=x), info

    @staticmethod
    def _buckets_to_video(info: AttnInfo, buckets: FrameBuckets, occupied: Tensor, p: int, n: int) -> AttnInfo:
        """Per-frame attention info [B*T, P+M, ...] -> per-video [B, P+n, ...] for n patch tokens, as
        `_frames_to_video` (prefix averaged over the occupied frames, patch scores divided by their
        number), the buckets' padding discarded (padding tokens get zeros)."""
        b, frames, m = buckets.index.shape
        flat = buckets.index.reshape(b, frames * m)
        used = occupied.sum(1)  # [B]

        def merge(v: Optional[Tensor], scale_patches: bool) -> Optional[Tensor]:
            if v is None:
                return None
            v = v.reshape(b, frames, *v.shape[1:])  # [B, T, P+M, ...]
            tail = (1,) * (v.dim() - 3)
            weight = occupied.to(v.dtype).view(b, frames, 1, *tail)
            prefix = (v[:, :, :p] * weight).sum(1) / used.to(v.dtype).view(b, 1, *tail)
            values = v[:, :, p:].reshape(b, frames * m, *v.shape[3:])
            index = flat.view(b, frames * m, *tail).expand_as(values)
            patches = v.new_zeros(b, n + 1, *v.shape[3:]).scatter_add(1, index, values)[:, :n]
            if scale_patches:
                patches = patches / used.to(v.dtype).view(b, 1, *tail)
            return torch.cat([prefix, patches], dim=1)

        return AttnInfo(
            keys=merge(info.keys, False),
            cls_attn=merge(info.cls_attn, True),
            received_attn=merge(info.received_attn, True),
            sharpness=merge(info.sharpness, False),
        )

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
