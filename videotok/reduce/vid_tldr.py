"""`vid_tldr`: vid-TLDR (Choi et al., CVPR 2024), training-free token merging weighted by saliency.

At each scheduled block, after attention (mlvlab/vid-TLDR, `multi_modality/utils/vid_TLDR.py`):
1. saliency of every patch token from the sharpness of its own attention row in that block: the
   row averaged over the heads (plain softmax, no size bias), s = sum_j a_j log a_j, min-max
   normalised over the tokens; tokens below the mean are background (0), the others are sharpened:
   (s - mean) / max(s - mean);
2. bipartite matching on the tokens themselves (the block's hidden states after attention, cosine),
   set A = even tokens, B = odd tokens; each A token's best B match, the r best edges merge;
3. a merged A token enters its B token's average weighted by its saliency times its mass, and adds
   that much to the B token's mass: background tokens vanish from the features, object tokens merge.
   `mass` (TokenState) carries these weighted sizes into proportional attention, later merges and
   pooling exactly as the authors' `size`; `size` itself still counts the patches a token covers.

The output order is the authors' (unmerged A tokens in order, then every B token), so a multi-block
schedule matches theirs block by block. Without a CLS token (VideoMAE, as the authors' encoder) the
rows and the matching cover all tokens; with one, the CLS token keeps its slot, is never merged and
is left out of the saliency normalisation (its own row is not scored; its column still is in every
row). r is capped at half the patch tokens, as theirs (bind refuses a schedule the cap would lower).
Ours differs only where theirs fails: 0 log 0 counts 0 (theirs gives NaN) and all-equal scores give
zero saliency rather than 0/0.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from videotok.layers.attention import AttnInfo, AttnRequest
from videotok.reduce.base import BackboneSpec, Reducer
from videotok.reduce.match import MergePlan, apply_plan
from videotok.reduce.registry import register_reducer
from videotok.reduce.schedule import LayersArg, check_r_schedule, parse_layers
from videotok.reduce.state import TokenState

RArg = Union[int, str, Sequence[int]]


def saliency(sharpness: Tensor) -> Tensor:
    """[B, n] sum of a log a per token -> [B, n] saliency in [0, 1]: background (below the mean after
    min-max normalisation) 0, foreground sharpened to (s - mean) / max(s - mean)."""
    s = sharpness.float()
    s = s - s.amin(dim=1, keepdim=True)
    s = s / s.amax(dim=1, keepdim=True).clamp_min(1e-12)
    mean = s.mean(dim=1, keepdim=True)
    background = s < mean
    s = s - mean
    s = s / s.amax(dim=1, keepdim=True).clamp_min(1e-12)
    return s.masked_fill(background, 0.0)


def tldr_plan(metric: Tensor, weight: Tensor, r: int, num_prefix: int) -> MergePlan:
    """Bipartite merging of the patch tokens of `metric` [B, P + n, D] (cosine), the r best A -> B edges,
    each merged A token weighted by `weight` [B, n]. Output slots: prefix, unmerged A tokens in
    order, then the B tokens in order (the authors' layout)."""
    b, num_tokens, _ = metric.shape
    n = num_tokens - num_prefix
    device = metric.device
    with torch.no_grad():
        m = metric[:, num_prefix:].float()
        m = m / m.norm(dim=-1, keepdim=True)
        set_a, set_b = m[:, 0::2], m[:, 1::2]  # [B, |A|, D], [B, |B|, D]
        scores = (set_a @ set_b.transpose(1, 2) + 1) / 2  # [B, |A|, |B|], cosine in [0, 1] as theirs
        best, target = scores.max(dim=-1)  # [B, |A|]
        edges = best.argsort(dim=-1, descending=True)  # [B, |A|]
        num_a = set_a.shape[1]
        merged_a = torch.zeros(b, num_a, dtype=torch.bool, device=device).scatter_(1, edges[:, :r], True)
        unmerged_slot = (~merged_a).long().cumsum(dim=1) - 1  # [B, |A|], rank among unmerged A
        first_b = num_prefix + num_a - r  # slot of the first B token
        dest = torch.empty(b, n, dtype=torch.long, device=device)
        dest[:, 0::2] = torch.where(merged_a, first_b + target, num_prefix + unmerged_slot)
        dest[:, 1::2] = first_b + torch.arange(set_b.shape[1], device=device)
        w = torch.ones(b, n, device=device)  # 1 for every token but the merged A ones: their saliency
        w[:, 0::2] = torch.where(merged_a, weight[:, 0::2].float(), w[:, 0::2])
        prefix = torch.arange(num_prefix, device=device).expand(b, -1)
        full_w = torch.cat([torch.ones(b, num_prefix, device=device), w], dim=1)
    # every token lands in a slot (merged A into B, the others kept): nothing is dropped
    return MergePlan(dest=torch.cat([prefix, dest], dim=1), num_out=num_tokens - r, weight=full_w,
                     weighs_mass=True, drops=False)


def parse_r(r: RArg) -> list[int]:
    """"600,200,100", [600, 200, 100] or 8 -> a list of ints (one value: the same at every `layers` block)."""
    if isinstance(r, str):
        values = [int(v) for v in r.replace(" ", "").split(",") if v]
    elif isinstance(r, int):
        values = [r]
    else:
        values = [int(v) for v in r]
    if not values or min(values) < 0:
        raise ValueError(f"vid_tldr: r={r!r} must be tokens merged per block, >= 0 (one value or one per block)")
    return values


@register_reducer("vid_tldr")
class VidTLDR(Reducer):
    """Merge r tokens per scheduled block by saliency-weighted bipartite merging (vid-TLDR).

    r: tokens merged per block: one value (at each of `layers`), or a list per block from block 0
        ("600,200,100" merges at blocks 0, 1, 2, the authors' ViT-B form); 0 is the baseline.
    layers: with one r value, the blocks that merge (None/"all" = every block); not with a list.
    """

    divided_attention = "approximate (merged tokens are placed by their patches)"

    def __init__(self, r: RArg = 0, layers: LayersArg = None) -> None:
        super().__init__()
        self.r, self.layers = parse_r(r), layers
        if len(self.r) > 1 and layers is not None:
            raise ValueError("vid_tldr: give r as one value with `layers`, or as a list per block without it")
        self.schedule: dict[int, int] = {}

    def bind(self, spec: BackboneSpec) -> None:
        """Fix r per block; refuse a schedule that asks some block for more than half its patch tokens."""
        super().bind(spec)
        if len(self.r) > 1:
            if len(self.r) > spec.depth:
                raise ValueError(f"vid_tldr: r has {len(self.r)} values for a {spec.depth}-block backbone")
            active, amounts = tuple(range(len(self.r))), list(self.r)
        else:
            active = parse_layers(self.layers, spec.depth)
            amounts = self.r * len(active)
        self.schedule = {layer: r for layer, r in zip(active, amounts) if r > 0}
        t, h, w = spec.grid
        check_r_schedule(self.name, max(self.r), amounts, t * h * w, "in the sequence", 0.0, layers=active)

    def request(self, layer: int, state: TokenState) -> Optional[AttnRequest]:
        return AttnRequest(sharpness=True) if layer in self.schedule else None

    def reduce(self, state: TokenState, info: AttnInfo, layer: int) -> TokenState:
        r = min(self.schedule.get(layer, 0), state.num_patches // 2)
        if r <= 0:
            return state
        p = state.num_prefix
        weight = saliency(info.sharpness[:, p:].detach())  # [B, n]; no gradient, as the authors'
        plan = tldr_plan(state.x, weight, r, p)
        return apply_plan(state, plan, grid=None, frames=None)

    def extra_repr(self) -> str:
        return f"r={self.r}, layers={self.layers}"
