"""`crucial_merge`: crucial-token merging with multi-scale fusion, after "Multi-Scale And Token
Mergence: Make Your ViT More Efficient".

At each scheduled block, between attention and MLP:
  importance  the CLS-to-token attention row (head-averaged); without a CLS token (VideoMAE), the mean
              attention each token receives (videotok.reduce.importance).
  crucial     the k = ceil(keep_rate * n) most important of the n non-CLS tokens (EViT's count).
  merge       every other token joins its most similar crucial token (cosine of the head-averaged
              keys); a merged token is the average of its members weighted by size x importance, its
              size the sum. Nothing is discarded and the CLS token is never merged.
Before the first scheduled block's attention, a coarse view of the token grid is fused into the fine
tokens (multi-scale fusion, `fusion=True`); the block then attends over, and ranks, the fused tokens.

The paper's method section is not public. The following choices are ours:
  - importance = CLS attention as in EViT (attention received where there is no CLS token), crucial
    count = EViT's ceil(keep_rate * n); every token (crucial or not) enters its group's average with
    weight size x importance, so a group is pulled toward its most attended tokens, and sizes still
    sum to N0;
  - similarity = cosine of head-averaged keys (ToMe's metric), non-crucial -> most similar crucial;
  - the fusion is one light cross-attention: queries = the fine patch tokens (LayerNorm, projection
    to dim/4), keys/values = the coarse tokens (own LayerNorm and projections), one head per 64
    channels (at least one), an output projection back to dim and a per-channel gate initialised to
    zero (LayerScale-style), so a pretrained model is exactly unchanged until the gate trains. The
    CLS token is not a fine token and is left alone. Each fine token sees every coarse token of the
    clip (a cheap global context: 1/4 of the tokens at 2x2 pooling, in a quarter of the width);
  - the fusion runs once, at the first scheduled block, before its attention (the grid still holds
    there, and the importance scores of that block already see the fused tokens). It runs even when
    keep_rate=1 (then it is the fusion-only ablation; with the gate at zero it equals the baseline);
  - coarse views are size-weighted average pooling of the grid (partial windows at edges that do not
    divide, as the `pool` reducer does).

coarse_scales syntax: comma-separated pooling windows, each "K" (K x K within each frame) or "TxKxK"
(T consecutive frames x K x K): "2" (default), "2,4" (two views), "2x2x2" (2 frames x 2 x 2).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videotok.layers.attention import AttnInfo, AttnRequest
from videotok.layers.block import Block
from videotok.reduce.base import BackboneSpec, Reducer
from videotok.reduce.evit import default_layers
from videotok.reduce.importance import importance, importance_request
from videotok.reduce.match import MergePlan, apply_plan, merge_into_plan, pool_plan
from videotok.reduce.registry import register_reducer
from videotok.reduce.schedule import LayersArg, kept_after, parse_layers
from videotok.reduce.state import Grid, TokenState

Scale = tuple[int, int]  # (temporal, spatial kernel)


def parse_scales(scales: str) -> tuple[Scale, ...]:
    """"2,2x2x2" -> ((1, 2), (2, 2)): (frames, kernel) pooling windows of the coarse views."""
    out = []
    for item in str(scales).lower().replace(" ", "").split(","):
        parts = item.split("x") if item else []
        try:
            values = [int(v) for v in parts]
        except ValueError:
            values = []
        if len(values) == 1:
            values = [1, values[0], values[0]]
        if len(values) != 3 or min(values) < 1 or values[1] != values[2]:
            raise ValueError(
                f"crucial_merge: coarse_scales={scales!r}; each comma-separated scale is K (K x K pooling per frame) "
                "or TxKxK (T frames x K x K, square), for example 2, 2,4 or 2x2x2"
            )
        if values == [1, 1, 1]:
            raise ValueError(f"crucial_merge: coarse_scales={scales!r}; scale {item!r} is not coarser than the grid")
        out.append((values[0], values[1]))
    return tuple(out)


def crucial_merge_plan(importance: Tensor, keys: Tensor, k: int, num_prefix: int) -> MergePlan:
    """Keep the k most important non-prefix tokens; every other one joins its most similar kept token.

    importance: [B, N]; keys: [B, N, d]. Weights are importance (floored), 1 for the prefix.
    """
    p = num_prefix
    score = importance[:, p:].float()  # [B, n]
    top = score.topk(k, dim=1).indices  # [B, k]
    crucial = torch.zeros_like(score, dtype=torch.bool).scatter_(1, top, True)
    metric = keys[:, p:].float()
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    crucial_keys = metric.gather(1, top.unsqueeze(-1).expand(-1, -1, metric.shape[-1]))  # [B, k, d]
    similar = (metric @ crucial_keys.transpose(1, 2)).argmax(dim=-1)  # [B, n] -> position in top
    target = top.gather(1, similar) + p  # [B, n] token index of the chosen crucial token
    keep = torch.cat([crucial.new_ones(crucial.shape[0], p), crucial], dim=1)  # [B, P + n]
    prefix = torch.arange(p, device=keys.device).expand(keys.shape[0], -1)
    plan = merge_into_plan(keep, torch.cat([prefix, target], dim=1), num_out=p + k)
    weight = torch.cat([score.new_ones(score.shape[0], p), score.clamp_min(1e-8)], dim=1)
    return replace(plan, weight=weight)  # merge_into_plan's plan: nothing dropped


class CoarseFusion(nn.Module):
    """Fuse coarse views of the token grid into the fine tokens by a light, zero-gated cross-attention."""

    def __init__(self, dim: int, scales: tuple[Scale, ...]) -> None:
        super().__init__()
        self.scales = scales
        width = max(dim // 4, 1)
        self.num_heads = width // 64 if width % 64 == 0 else 1  # 64-channel heads where they fit
        self.norm_fine = nn.LayerNorm(dim, eps=1e-6)
        self.norm_coarse = nn.LayerNorm(dim, eps=1e-6)
        self.q = nn.Linear(dim, width)
        self.kv = nn.Linear(dim, 2 * width)
        self.proj = nn.Linear(width, dim)
        self.gate = nn.Parameter(torch.zeros(dim))  # zero: the pretrained model is unchanged at start
        for m in (self.q, self.kv, self.proj):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        self._plans: dict[tuple, list[tuple[MergePlan, Grid]]] = {}

    def coarse_tokens(self, state: TokenState) -> Tensor:
        """The coarse views of the patch tokens, concatenated: [B, M, C]."""
        p, b = state.num_prefix, state.x.shape[0]
        key = (state.grid, state.x.device)
        if key not in self._plans:
            self._plans[key] = [pool_plan(state.grid, k, t, 0, state.x.device) for t, k in self.scales]
        patches = TokenState(x=state.x[:, p:], size=state.size[:, p:], pos=state.pos[:, p:], grid=state.grid, num_prefix=0)
        views = [apply_plan(patches, MergePlan(plan.dest.expand(b, -1), plan.num_out)).x for plan, _ in self._plans[key]]
        return torch.cat(views, dim=1)

    def _heads(self, t: Tensor) -> Tensor:
        b, n, c = t.shape  # [B, n, width] -> [B, heads, n, width / heads]
        return t.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, state: TokenState) -> TokenState:
        if state.grid is None:
            raise ValueError("crucial_merge fusion: the tokens no longer form a regular grid to pool")
        p = state.num_prefix
        fine = state.x[:, p:]  # [B, n, C]
        coarse = self.coarse_tokens(state)  # [B, M, C]
        q = self._heads(self.q(self.norm_fine(fine)))
        k, v = self.kv(self.norm_coarse(coarse)).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(q, self._heads(k), self._heads(v))  # [B, heads, n, w/heads]
        out = self.proj(out.transpose(1, 2).reshape(fine.shape[0], fine.shape[1], -1))  # [B, n, C]
        x = torch.cat([state.x[:, :p], fine + self.gate.to(fine.dtype) * out], dim=1)
        return state.replace(x=x)


@register_reducer("crucial_merge")
class CrucialMerge(Reducer):
    """Merge every non-crucial token into its most similar crucial token; optional multi-scale fusion.

    keep_rate: share of non-CLS tokens that are crucial at each scheduled block; 1 = no merging.
    layers: scheduled blocks; None = EViT's placement at 1/4, 2/4, 3/4 of the depth (3,6,9 for 12).
    fusion: fuse a coarse view of the grid into the fine tokens before the first scheduled block
        (adds parameters, zero-gated).
    coarse_scales: the coarse views' pooling windows, "K" or "TxKxK", comma-separated (see module doc).
    """

    divided_attention = "approximate (merged tokens are placed by their patches)"
    ranks_by_importance = True

    def __init__(self, keep_rate: float = 0.7, layers: LayersArg = None, fusion: bool = True, coarse_scales: str = "2") -> None:
        super().__init__()
        kept_after(10, float(keep_rate))  # validates the range with a clear message
        self.keep_rate, self.layers, self.fusion = float(keep_rate), layers, bool(fusion)
        self.coarse_scales = parse_scales(coarse_scales) if self.fusion else ()
        self.adds_parameters = self.fusion
        self.schedule: tuple[int, ...] = ()
        self.fuser: Optional[CoarseFusion] = None

    def bind(self, spec: BackboneSpec) -> None:
        super().bind(spec)
        self.schedule = default_layers(spec.depth) if self.layers is None else parse_layers(self.layers, spec.depth)
        if not self.schedule:
            raise ValueError(f"crucial_merge: layers={self.layers!r} schedules no block")
        self.fuser = None
        if self.fusion:
            if spec.grid[0] == 1 and any(t > 1 for t, _ in self.coarse_scales):
                raise ValueError(
                    f"crucial_merge: coarse_scales pools over frames, but the blocks of this backbone see grid "
                    f"{spec.grid} (one frame; the factorised encoder's spatial blocks run per frame); use K only"
                )
            self.fuser = CoarseFusion(spec.dim, self.coarse_scales)

    def forward_block(self, block: Block, state: TokenState, layer: int) -> TokenState:
        if self.fuser is not None and layer == self.schedule[0]:
            state = self.fuser(state)
        return block(state, self, layer)

    def request(self, layer: int, state: TokenState) -> Optional[AttnRequest]:
        if self.keep_rate >= 1.0 or layer not in self.schedule:
            return None
        return importance_request(state.num_prefix, keys=True)

    def reduce(self, state: TokenState, info: AttnInfo, layer: int) -> TokenState:
        n = state.num_patches
        k = kept_after(n, self.keep_rate)
        if k >= n:
            return state
        plan = crucial_merge_plan(importance(info), info.keys, k, state.num_prefix)
        return apply_plan(state, plan, grid=None, frames=None)

    def extra_repr(self) -> str:
        scales = ",".join(f"{t}x{k}x{k}" for t, k in self.coarse_scales)
        return f"keep_rate={self.keep_rate}, layers={self.layers}, fusion={self.fusion}, coarse_scales={scales}"
