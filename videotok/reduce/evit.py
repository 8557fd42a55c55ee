"""`evit`: EViT (Liang et al., 2022), keep the attentive tokens and fuse the inattentive ones.

At each scheduled block the k = ceil(keep_rate * (N - P)) non-CLS tokens with the highest CLS
attention are kept (the fused token of an earlier block competes like any other), and all the others
are fused into ONE extra token appended last. A backbone without a CLS token (VideoMAE) ranks and
weights by the attention each token receives instead (videotok.reduce.importance; our choice, EViT
needs a CLS token). Two choices differ from EViT's code on purpose:
  - the fused token is a size- and importance-weighted *average* (EViT sums attention-weighted
    features), so it stays on the scale of ordinary tokens and sizes still sum to N0, as every
    videotok merge does;
  - kept tokens keep their original order instead of EViT's sort by attention (order carries no
    meaning once positions are embedded; keeping it makes plans easy to inspect).
In TimeSformer's divided blocks the CLS row comes from the spatial attention, averaged over frames
(see Block._frames_to_video). The grid is gone afterwards: later blocks run joint attention.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from videotok.layers.attention import AttnInfo, AttnRequest
from videotok.reduce.base import BackboneSpec, Reducer
from videotok.reduce.importance import importance, importance_request
from videotok.reduce.match import apply_plan, keep_fuse_plan
from videotok.reduce.registry import register_reducer
from videotok.reduce.schedule import LayersArg, check_not_below_one, kept_after, parse_layers
from videotok.reduce.state import TokenState


def default_layers(depth: int) -> tuple[int, ...]:
    """EViT's placement: the blocks at 1/4, 2/4 and 3/4 of the depth (3, 6, 9 for 12 blocks)."""
    return tuple(sorted({max(1, depth * q // 4) for q in (1, 2, 3)} - {depth}))


@register_reducer("evit")
class EViT(Reducer):
    """Keep the top-k tokens by CLS attention (without a CLS token: attention received), fuse the rest into one.

    keep_rate: share of non-CLS tokens kept at each scheduled block (EViT's kappa); 1 = baseline.
    layers: blocks that reduce; None = EViT's placement at 1/4, 2/4, 3/4 of the depth (3,6,9 for 12).
    fuse: fuse the inattentive tokens into one extra token (True) or drop them (False; sizes then
        no longer sum to N0, as in EViT's "drop" ablation).
    """

    divided_attention = "approximate (the fused token is placed by its patches)"
    ranks_by_importance = True

    def __init__(self, keep_rate: float = 1.0, layers: LayersArg = None, fuse: bool = True) -> None:
        super().__init__()
        kept_after(10, float(keep_rate))  # validates the range with a clear message
        self.keep_rate, self.layers, self.fuse = float(keep_rate), layers, bool(fuse)
        self.active: tuple[int, ...] = ()

    def bind(self, spec: BackboneSpec) -> None:
        """Fix the reducing blocks; refuse, before any work, a keep rate that keeps fewer than one
        token at a block (``kept_after`` would round it up to one and quietly keep more)."""
        super().bind(spec)
        layers = default_layers(spec.depth) if self.layers is None else parse_layers(self.layers, spec.depth)
        self.active = layers if self.keep_rate < 1.0 else ()
        patches = spec.grid[0] * spec.grid[1] * spec.grid[2]  # non-CLS tokens
        short = self._first_short_block(self.keep_rate, patches)
        if short is not None:
            layer, tokens = short
            allowed = self._smallest_keep_rate(patches)
            check_not_below_one(
                self.name, math.floor(self.keep_rate * tokens),
                f"keep_rate={self.keep_rate:g} keeps {self.keep_rate * tokens:.3g} of the {tokens} patch tokens "
                f"at block {layer}; allowed: keep_rate in [{allowed:g}, 1] for this backbone and layers",
            )

    def _first_short_block(self, keep_rate: float, patches: int) -> Optional[tuple[int, int]]:
        """(block, tokens entering it) of the first active block where ``keep_rate`` keeps < 1."""
        tokens = patches
        for layer in self.active:
            if keep_rate * tokens < 1.0:
                return layer, tokens
            kept = kept_after(tokens, keep_rate)
            if kept < tokens:
                tokens = kept + int(self.fuse)
        return None

    def _smallest_keep_rate(self, patches: int) -> float:
        """The smallest keep rate (rounded up to 3 decimals) that keeps >= 1 token at every block."""
        low, high = 0.0, 1.0
        for _ in range(50):  # tokens kept only grow with the keep rate: bisect
            middle = (low + high) / 2
            low, high = (low, middle) if self._first_short_block(middle, patches) is None else (middle, high)
        return min(1.0, math.ceil(high * 1000) / 1000)

    def request(self, layer: int, state: TokenState) -> Optional[AttnRequest]:
        return importance_request(state.num_prefix) if layer in self.active else None

    def reduce(self, state: TokenState, info: AttnInfo, layer: int) -> TokenState:
        p = state.num_prefix
        n = state.num_patches
        k = kept_after(n, self.keep_rate)
        if k >= n:
            return state
        attn = importance(info)  # [B, P + n]: CLS row, or attention received without a CLS token
        score = attn[:, p:]  # [B, n]
        top = score.topk(k, dim=1).indices
        keep = torch.zeros_like(score, dtype=torch.bool).scatter_(1, top, True)
        keep = torch.cat([keep.new_ones(keep.shape[0], p), keep], dim=1)  # [B, P + n]
        # kept tokens weigh 1 (alone in their slot); fused ones by their importance, floored so a
        # token nobody attends to still has a defined average
        weight = torch.where(keep, torch.ones_like(attn), attn.float().clamp_min(1e-8))
        plan = keep_fuse_plan(keep, self.fuse, weight, num_kept=p + k)
        return apply_plan(state, plan, grid=None, frames=None)

    def extra_repr(self) -> str:
        return f"keep_rate={self.keep_rate}, layers={self.layers}, fuse={self.fuse}"
