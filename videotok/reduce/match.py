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

from videotok.layers.placement import shape_constant
from videotok.reduce.state import Grid, TokenState


@dataclass
class MergePlan:
    """dest[b, i]: output slot of token i of sample b, in [0, num_out), or -1 to drop it.

    weight: optional [B, N] importance that multiplies size (or mass) in the feature average only
    (positions stay a centre of mass, sizes still add).
    weighs_mass: the merged tokens' mass is the weighted sum too (vid_tldr: a token merged with
    saliency s adds s times its mass, as its authors' sizes do), not the plain sum.
    drops: whether some dest may be -1; False where the planner knows none is (every token lands in a
    slot), so applying the plan skips the masking.

    Every plan keeps the prefix tokens in their own slots (dest[b, i] = i for i < P): `follow_owner`
    relies on it. dest may also be [1, N], one plan shared by every sample (pooling).
    """

    dest: Tensor  # [B, N] long, or [1, N]
    num_out: int
    weight: Optional[Tensor] = None  # [B, N] float
    weighs_mass: bool = False
    drops: bool = True


def as_float(t: Tensor) -> Tensor:
    """`t` in float32, without dispatching a no-op cast when it already is (each op is a kernel launch
    on a GPU, DESIGN.md "Where the time goes on a GPU")."""
    return t if t.dtype == torch.float32 else t.float()


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
    and sources. Everything that is summed per output slot travels in one [B, N, C+4] tensor through
    one `scatter_add_` (x times its weight, pos times size, size, and the weight and mass where they
    differ from size): a handful of ops per plan, whatever it merges."""
    batch, num_tokens, dim = state.x.shape
    dest, size, mass = plan.dest, state.size, state.mass
    if plan.drops:
        kept = dest >= 0
        size = size * kept  # [B, N]; dropped tokens carry no weight
        mass = None if mass is None else mass * kept
        dest = dest.clamp(min=0)
    base = size if mass is None else mass  # what a token counts for in averages
    weight = base if plan.weight is None else base * as_float(plan.weight)
    size_column = size.unsqueeze(-1)
    columns = [as_float(state.x) * (size_column if weight is size else weight.unsqueeze(-1)),
               state.pos * size_column, size_column]
    if weight is not size:
        columns.append(weight.unsqueeze(-1))
    if mass is not None and not plan.weighs_mass:
        columns.append(base.unsqueeze(-1))
    values = torch.cat(columns, dim=-1)  # [B, N, C+4(+1)(+1)]
    summed = _sum_into_slots(values, dest, plan.num_out)  # [B, num_out, C+4(+1)(+1)]
    new_size = summed[..., dim + 3]  # [B, num_out], a strided view
    size_sum = summed[..., dim + 3 : dim + 4]
    if plan.drops or state.padded:  # only then may a slot hold no size (every slot holds a kept token)
        size_sum = size_sum.clamp_min(1e-12)
    weight_sum = size_sum if weight is size else summed[..., dim + 4 : dim + 5].clamp_min(1e-12)
    x = summed[..., :dim] / weight_sum
    if x.dtype != state.x.dtype:
        x = x.to(state.x.dtype)
    pos = summed[..., dim : dim + 3] / size_sum
    if plan.weighs_mass:
        mass = new_size if weight is size else summed[..., dim + 4]
    elif mass is not None:
        mass = summed[..., -1]
    source = None
    if state.source is not None:
        index = dest.expand(batch, -1).unsqueeze(-1).expand(-1, -1, state.source.shape[-1])
        kept_source = state.source * kept.unsqueeze(-1) if plan.drops else state.source
        source = state.source.new_zeros(batch, plan.num_out, state.source.shape[-1]).scatter_add_(1, index, kept_source)
    merged = state.merged or bool(plan.num_out < num_tokens)
    owner = None if state.owner is None else follow_owner(state.owner, plan.dest, state.num_prefix)
    return state.replace(x=x, size=new_size, pos=pos, grid=grid, frames=frames, source=source, merged=merged,
                         owner=owner, mass=mass, discarded=state.discarded or plan.drops)


def _sum_into_slots(values: Tensor, dest: Tensor, num_out: int) -> Tensor:
    """values [B, N, K] summed into the slots `dest` [B, N] (or [1, N], shared) names, every slot's
    addends in token order: [B, num_out, K]."""
    batch, _, width = values.shape
    out = values.new_zeros(batch, num_out, width)
    if dest.shape[0] == 1 and batch > 1:
        return out.index_add_(1, dest[0], values)
    return out.scatter_add_(1, dest.unsqueeze(-1).expand(-1, -1, width), values)


def follow_owner(owner: Tensor, dest: Tensor, num_prefix: int) -> Tensor:
    """Where each original patch lives after a plan: owner [B, T, H, W] (patch-token indices, -1 =
    dropped) through dest [B, P + n] (or [1, P + n]) -> the new owner map. A patch merged into a prefix
    slot counts as dropped (it no longer has a place of its own).

    Read as one gather: patch token j is token j + P, and a dropped patch (-1) reads token P - 1, a
    prefix token, which every plan keeps in its slot P - 1: every prefix slot, a dropped token (-1) and
    a patch already dropped all land below 0, which the clamp makes -1. Without a prefix a -1 column
    leads the plan instead."""
    batch = owner.shape[0]
    flat = owner.reshape(batch, -1)  # [B, T*H*W]
    shift = num_prefix  # where patch token 0 sits in dest
    if num_prefix == 0:
        dest, shift = torch.nn.functional.pad(dest, (1, 0), value=-1), 1  # [B, 1 + n]
    if dest.shape[0] != batch:
        dest = dest.expand(batch, -1)
    moved = dest.gather(1, flat + shift)  # [B, T*H*W] the slot of each patch's token
    if num_prefix:
        moved = moved.sub_(num_prefix)
    moved = moved.clamp_min_(-1)
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
    mergeable tokens. Kept tokens keep their order, so the prefix stays first.
    """
    return bipartite_plan(metric, r, num_prefix, first_a=num_prefix % 2)


def bipartite_plan(keys: Tensor, r: int, num_prefix: int, groups: int = 1, first_a: int = 0,
                   tube: bool = False) -> MergePlan:
    """Bipartite soft matching inside each of `groups` equal, contiguous groups of the patch tokens of
    `keys` [B, P + G*n, D] (G = 1: all of them; G = T: each frame), r merges per group, as one plan
    over the whole sequence: the prefix keeps its slots and each group's outputs follow the previous
    group's, so per-frame groups stay T equal, contiguous groups.

    In each group, A = the patch tokens first_a, first_a + 2, ... and B the others (ToMe's even and odd
    tokens: first_a = P % 2 over the whole sequence, 0 within a frame); r is capped at half the group.
    tube: one matching, on the group-averaged metric, applied to every group (the same merges in
    every frame). The sets are strided views and the plan is written in place through them: about 25
    ops whatever G, no host sync.
    """
    batch, total, _ = keys.shape
    n = (total - num_prefix) // groups
    first_b = 1 - first_a
    r = min(r, len(range(first_a, n, 2)), n // 2)
    if r <= 0:
        return MergePlan(dest=torch.arange(total, device=keys.device).expand(batch, -1), num_out=total, drops=False)
    metric = keys[:, num_prefix:].reshape(batch, groups, n, -1)  # [B, G, n, D]
    if tube:
        metric = metric.mean(dim=1, keepdim=True)  # [B, 1, n, D]
    metric = as_float(metric)  # bf16 similarities tie and flip merge decisions
    # no clamp (as ToMe): a zero key only makes its own scores NaN, and scores choose indices, never values
    metric = metric / metric.norm(dim=-1, keepdim=True)
    scores = metric[:, :, first_a::2] @ metric[:, :, first_b::2].transpose(-1, -2)  # [B, G, |A|, |B|]
    best_score, best_b = scores.max(dim=-1)  # [B, G, |A|]
    merged_a = best_score.topk(r, dim=-1).indices  # [B, G, r] positions within A (any order: a set)
    joined_b = best_b.gather(-1, merged_a)  # [B, G, r] positions within B
    if tube:
        merged_a, joined_b = merged_a.expand(-1, groups, -1), joined_b.expand(-1, groups, -1)
    keep = torch.ones(batch, groups, n, dtype=torch.long, device=keys.device)
    keep[..., first_a::2].scatter_(-1, merged_a, 0)
    # kept patch tokens' output slots, in order, after the prefix's: [B, G, n] -> [B, G*n] -> [B, G, n]
    slots = keep.view(batch, -1).cumsum(dim=1)
    if num_prefix != 1:
        slots = slots.add_(num_prefix - 1)
    slots = slots.view(batch, groups, n)
    joined = slots[..., first_b::2].gather(-1, joined_b)  # [B, G, r] the slots they join
    slots[..., first_a::2].scatter_(-1, merged_a, joined)
    prefix = shape_constant(("prefix", batch, num_prefix, keys.device), lambda: torch.arange(
        num_prefix, device=keys.device).expand(batch, -1))
    return MergePlan(dest=torch.cat([prefix, slots.view(batch, -1)], dim=1), num_out=total - groups * r, drops=False)


def merge_into_plan(keep: Tensor, target: Tensor, num_out: Optional[int] = None) -> MergePlan:
    """Kept tokens stay in order; every other token joins the kept token `target` names.

    keep: [B, N] bool, the same count per sample. target: [B, N] long token indices (read only where
    `keep` is False; they must point at kept tokens). Nothing is discarded. `num_out`: as in
    `keep_plan`.
    """
    slots = slots_of_kept(keep)
    dest = torch.where(keep, slots, slots.gather(1, target))
    return MergePlan(dest=dest, num_out=kept_count(keep, num_out), drops=False)


def keep_fuse_plan(keep: Tensor, fuse: bool = True, weight: Optional[Tensor] = None,
                   num_kept: Optional[int] = None) -> MergePlan:
    """Keep the `keep` [B, N] tokens in order; fuse all others into ONE extra token appended last
    (EViT), weighted by `weight` [B, N], or drop them when `fuse` is False. `num_kept`: the kept
    count if the caller knows it (as `keep_plan`'s `num_out`)."""
    plan = keep_plan(keep, num_kept)
    if not fuse:
        return plan
    dest = torch.where(keep, plan.dest, torch.full_like(plan.dest, plan.num_out))
    return MergePlan(dest=dest, num_out=plan.num_out + 1, weight=weight, drops=False)


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
    return MergePlan(dest=torch.cat([prefix, dest], dim=1), num_out=num_prefix + frames * per_frame, weight=weight,
                     drops=frame_plan.drops)


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
    return MergePlan(dest=dest, num_out=num_prefix + new[0] * new[1] * new[2], drops=False), new
