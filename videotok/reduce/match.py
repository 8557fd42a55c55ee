"""Pure planning and merging functions: plan once (which token goes where), apply to every tensor.

A plan maps each current token to an output slot. Applying it is one size-weighted scatter-average,
so features, sizes, positions and sources are merged alike and nothing is discarded unless a plan
says so (dest = -1). Accumulation runs in float32 whatever the autocast dtype, because a sum of
many bf16 tokens loses the small ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from videotok.reduce.state import Grid, TokenState


@dataclass
class MergePlan:
    """dest[b, i]: output slot of token i of sample b, in [0, num_out), or -1 to drop it.

    weight: optional [B, N] importance that multiplies size (or mass) in the feature average only
    (positions stay a centre of mass, sizes still add).
    weighs_mass: the merged tokens' mass is the weighted sum too (vid_tldr: a token merged with
    saliency s adds s times its mass, as its authors' sizes do), not the plain sum.
    """

    dest: Tensor  # [B, N] long
    num_out: int
    weight: Optional[Tensor] = None  # [B, N] float
    weighs_mass: bool = False


def slots_of_kept(keep: Tensor) -> Tensor:
    """Output slots that preserve the original order of the kept tokens: [B, N] bool -> [B, N] long.

    Dropped positions get the slot their kept successor would get; callers overwrite them.
    """
    return keep.long().cumsum(dim=1) - 1


def apply_plan(
    state: TokenState,
    plan: MergePlan,
    grid: Optional[Grid] = None,
    frames: Optional[int] = None,
) -> TokenState:
    """Merge `state` by `plan`: size- (or mass-) weighted averages of x, size-weighted pos, summed sizes
    and sources. Everything that is summed per output slot travels in one [B*N, C+5] tensor through
    one `index_add_` (x times its weight, pos times size, size, weight, mass)."""
    batch, num_tokens, dim = state.x.shape
    kept = plan.dest >= 0
    size = state.size * kept  # [B, N]; dropped tokens carry no weight
    base = size if state.mass is None else state.mass * kept  # what a token counts for in averages
    weight = base if plan.weight is None else base * plan.weight.float()
    # every sample's slots after the previous sample's: [B, N] -> rows of [B*num_out]
    rows = (plan.dest.clamp(min=0) + plan.num_out * torch.arange(batch, device=plan.dest.device)[:, None]).reshape(-1)
    columns = [state.x.float() * weight.unsqueeze(-1), state.pos * size.unsqueeze(-1), size.unsqueeze(-1),
               weight.unsqueeze(-1)]
    if state.mass is not None and not plan.weighs_mass:
        columns.append(base.unsqueeze(-1))
    values = torch.cat(columns, dim=-1)  # [B, N, C+5(+1)]
    summed = values.new_zeros(batch * plan.num_out, values.shape[-1]).index_add_(0, rows, values.reshape(-1, values.shape[-1]))
    summed = summed.reshape(batch, plan.num_out, -1)  # [B, num_out, C+5(+1)]
    new_size, weight_sum = summed[..., dim + 3], summed[..., dim + 4]
    x = (summed[..., :dim] / weight_sum.clamp_min(1e-12).unsqueeze(-1)).to(state.x.dtype)
    pos = summed[..., dim : dim + 3] / new_size.clamp_min(1e-12).unsqueeze(-1)
    mass = weight_sum if plan.weighs_mass else (None if state.mass is None else summed[..., dim + 5])
    source = None
    if state.source is not None:
        index = plan.dest.clamp(min=0).unsqueeze(-1).expand(-1, -1, state.source.shape[-1])
        source = state.source.new_zeros(batch, plan.num_out, state.source.shape[-1]).scatter_add_(
            1, index, state.source * kept.unsqueeze(-1))
    merged = state.merged or bool(plan.num_out < num_tokens)
    owner = None if state.owner is None else follow_owner(state.owner, plan.dest, state.num_prefix)
    return state.replace(x=x, size=new_size.contiguous(), pos=pos, grid=grid, frames=frames, source=source,
                         merged=merged, owner=owner, mass=None if mass is None else mass.contiguous())


def follow_owner(owner: Tensor, dest: Tensor, num_prefix: int) -> Tensor:
    """Where each original patch lives after a plan: owner [B, T, H, W] (patch-token indices, -1 =
    dropped) through dest [B, P + n] -> the new owner map. A patch merged into a prefix slot counts as
    dropped (it no longer has a place of its own)."""
    batch = owner.shape[0]
    flat = owner.reshape(batch, -1)  # [B, T*H*W]
    moved = dest.expand(batch, -1).gather(1, flat.clamp_min(0) + num_prefix) - num_prefix  # [B, T*H*W]
    moved = torch.where((flat >= 0) & (moved >= 0), moved, torch.full_like(moved, -1))
    return moved.reshape(owner.shape)


def kept_count(keep: Tensor, num_out: Optional[int]) -> int:
    """The tokens every sample keeps: `num_out` where the caller knows it (a top-k of fixed size; no
    host sync, so the plan stays inside one compiled graph), else counted and checked equal."""
    if num_out is not None:
        return num_out
    counts = keep.sum(1)
    if not bool((counts == counts[0]).all()):
        raise ValueError("every sample must keep the same number of tokens")
    return int(counts[0])


def keep_plan(keep: Tensor, num_out: Optional[int] = None) -> MergePlan:
    """Plan that keeps the `keep` [B, N] tokens in order and drops the rest (equal count per sample,
    `num_out` if the caller knows it)."""
    dest = torch.where(keep, slots_of_kept(keep), torch.full_like(keep, -1, dtype=torch.long))
    return MergePlan(dest=dest, num_out=kept_count(keep, num_out))


def bipartite_soft_matching(metric: Tensor, r: int, num_prefix: int = 1) -> MergePlan:
    """ToMe's bipartite soft matching over tokens [B, N, D] (cosine similarity of `metric`).

    Tokens alternate into sets A (even) and B (odd); each A token finds its most similar B token and
    the r most similar edges are merged. Prefix tokens are never merged; r is capped at half the
    mergeable tokens. Kept tokens keep their order, so the prefix stays first. The sets are strided
    views (A from the first even index past the prefix, B from the first odd one), not index copies.
    """
    batch, num_tokens, _ = metric.shape
    first_a = num_prefix + num_prefix % 2  # first mergeable even index
    first_b = num_prefix + 1 - num_prefix % 2  # first mergeable odd index
    size_a = len(range(first_a, num_tokens, 2))
    r = min(r, size_a, (num_tokens - num_prefix) // 2)
    if r <= 0:
        return MergePlan(dest=torch.arange(num_tokens, device=metric.device).expand(batch, -1).clone(),
                         num_out=num_tokens)
    metric = metric.float()  # bf16 similarities tie and flip merge decisions
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    scores = metric[:, first_a::2] @ metric[:, first_b::2].transpose(1, 2)  # [B, |A|, |B|]
    best_score, best_b = scores.max(dim=-1)  # [B, |A|]
    merged_a = best_score.argsort(dim=-1, descending=True)[:, :r]  # [B, r] positions within A
    src_tokens = first_a + 2 * merged_a  # [B, r] token indices that disappear
    dst_tokens = first_b + 2 * best_b.gather(1, merged_a)  # [B, r] token they join
    keep = torch.ones(batch, num_tokens, dtype=torch.bool, device=metric.device).scatter_(1, src_tokens, False)
    slots = slots_of_kept(keep)
    dest = slots.scatter(1, src_tokens, slots.gather(1, dst_tokens))
    return MergePlan(dest=dest, num_out=num_tokens - r)


def merge_into_plan(keep: Tensor, target: Tensor, num_out: Optional[int] = None) -> MergePlan:
    """Kept tokens stay in order; every other token joins the kept token `target` names.

    keep: [B, N] bool, the same count per sample. target: [B, N] long token indices (read only where
    `keep` is False; they must point at kept tokens). Nothing is discarded. `num_out`: as in
    `keep_plan`.
    """
    slots = slots_of_kept(keep)
    dest = torch.where(keep, slots, slots.gather(1, target))
    return MergePlan(dest=dest, num_out=kept_count(keep, num_out))


def keep_fuse_plan(keep: Tensor, fuse: bool = True, weight: Optional[Tensor] = None,
                   num_kept: Optional[int] = None) -> MergePlan:
    """Keep the `keep` [B, N] tokens in order; fuse all others into ONE extra token appended last
    (EViT), weighted by `weight` [B, N], or drop them when `fuse` is False. `num_kept`: the kept
    count if the caller knows it (as `keep_plan`'s `num_out`)."""
    plan = keep_plan(keep, num_kept)
    if not fuse:
        return plan
    dest = torch.where(keep, plan.dest, torch.full_like(plan.dest, plan.num_out))
    return MergePlan(dest=dest, num_out=plan.num_out + 1, weight=weight)


def per_frame_plan(frame_plan: MergePlan, batch: int, frames: int, num_prefix: int) -> MergePlan:
    """Lift a plan made for each frame's patch tokens alone to the whole sequence.

    frame_plan: dest [B*T, n] over one frame's n patch tokens (no prefix), the same num_out for every
    frame. Returns the plan over [B, P + T*n]: prefix tokens keep their slots and frame t's outputs
    follow frame t-1's, so the result is again T equal, contiguous per-frame groups.
    """
    per_frame = frame_plan.num_out
    dest = frame_plan.dest.reshape(batch, frames, -1)  # [B*T, n] -> [B, T, n]
    offset = num_prefix + per_frame * torch.arange(frames, device=dest.device).view(1, frames, 1)
    dest = torch.where(dest >= 0, dest + offset, dest).reshape(batch, -1)  # [B, T*n]
    prefix = torch.arange(num_prefix, device=dest.device).expand(batch, -1)
    weight = None
    if frame_plan.weight is not None:
        ones = frame_plan.weight.new_ones(batch, num_prefix)
        weight = torch.cat([ones, frame_plan.weight.reshape(batch, -1)], dim=1)
    return MergePlan(dest=torch.cat([prefix, dest], dim=1), num_out=num_prefix + frames * per_frame, weight=weight)


def pool_plan(grid: Grid, kernel: int, temporal: int, num_prefix: int, device: torch.device) -> tuple[MergePlan, Grid]:
    """Average pooling of a t-major (T, H, W) token grid as a plan for one sample ([1, P + THW]).

    Windows are `temporal` x `kernel` x `kernel`; edges that do not divide get partial windows
    (ceil), which the size-weighted merge averages correctly. Returns the plan and the new grid.
    """
    t, h, w = grid
    new = (-(-t // temporal), -(-h // kernel), -(-w // kernel))
    ti = torch.arange(t, device=device) // temporal
    hi = torch.arange(h, device=device) // kernel
    wi = torch.arange(w, device=device) // kernel
    cell = (ti[:, None, None] * new[1] + hi[None, :, None]) * new[2] + wi[None, None, :]  # [T, H, W]
    prefix = torch.arange(num_prefix, device=device)
    dest = torch.cat([prefix, num_prefix + cell.reshape(-1)]).unsqueeze(0)  # [1, P + THW]
    return MergePlan(dest=dest, num_out=num_prefix + new[0] * new[1] * new[2]), new
