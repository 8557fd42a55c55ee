"""`cross_frame`: merge what repeats from one frame to the next.

Video is redundant over time: a patch of frame t+1 is often the patch near the same place in frame t.

mode="tokens": at each scheduled block (between attention and MLP), every patch token is compared with
  the tokens of the previous frame that lie near its place (a `window` x `window` neighbourhood, cosine
  of the head-averaged keys); the r tokens (over the whole clip, per scheduled block) whose best match
  is most similar are merged into that match, size-weighted. The grid is gone afterwards and later
  blocks run joint attention.
mode="frames": at each scheduled block the r most similar pairs of adjacent frames (mean cosine of the
  keys at the same place) are merged into one frame, place by place. The tokens keep a regular grid
  (T - r, H, W), so TimeSformer's divided attention continues on fewer frames.

"Previous frame" and "near" are read from `pos`, the (t, h, w) centre of mass every token carries, so
later scheduled blocks keep working after merges have moved tokens off the grid: j is a candidate for
i when 0 < t_i - t_j <= 1 and |h_i - h_j|, |w_i - w_j| <= window // 2. Choices that are ours:
  - merging is transitive: when i joins j and j joins k in the same block, i joins k (sizes add,
    nothing is lost), so exactly r tokens disappear;
  - a token without a candidate in the window (possible only after earlier merges moved tokens) may
    still be chosen, ranked after every windowed candidate, and joins its most similar token earlier
    in (t, index) order. This keeps exactly r merges per sample, so the token count never depends on
    the rest of the batch; bind checks that r per block over the schedule never exceeds the tokens of
    frames 1..T-1, which guarantees enough candidates on the grid;
  - similarity over the whole clip is computed as one masked matrix (in row chunks), a few % of one
    attention at TimeSformer-B sizes, and under no_grad: the plan is discrete.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from videotok.layers.attention import AttnInfo, AttnRequest
from videotok.layers.placement import shape_constant
from videotok.reduce.base import BackboneSpec, Reducer
from videotok.reduce.match import MergePlan, apply_plan, merge_into_plan
from videotok.reduce.registry import register_reducer
from videotok.reduce.schedule import LayersArg, parse_layers
from videotok.reduce.state import Grid, TokenState

MODES = ("tokens", "frames")
_FALLBACK = 4.0  # cosine similarities lie in [-1, 1]: out-of-window matches rank after all windowed ones
_EPS = 1e-4
_CHUNK_ELEMENTS = 1 << 23  # similarity entries per chunk ([B, rows, n]): one chunk at TimeSformer-B batch 2


def _normalise(keys: Tensor) -> Tensor:
    keys = keys.float()
    return keys / keys.norm(dim=-1, keepdim=True).clamp_min(1e-6)


def resolve_chains(target: Tensor, steps: int) -> Tensor:
    """Follow `target` [B, n] (each token's parent index; roots point at themselves) to the roots by
    pointer doubling; `steps` >= log2 of the longest chain."""
    for _ in range(max(1, steps)):
        target = target.gather(1, target)
    return target


@torch.no_grad()
def cross_frame_plan(keys: Tensor, pos: Tensor, r: int, window: int, num_prefix: int) -> MergePlan:
    """Merge the r patch tokens most similar to a token near their place in the previous frame.

    keys: [B, N, d] head-averaged keys; pos: [B, N, 3] (t, h, w). Prefix tokens are never merged.
    """
    p = num_prefix
    metric = _normalise(keys[:, p:])  # [B, n, d]
    place = pos[:, p:].float()  # [B, n, 3] (t, h, w)
    t = place[..., 0]
    b, n, _ = metric.shape
    half = window // 2 + _EPS
    idx = torch.arange(n, device=keys.device)
    chunk = max(1, _CHUNK_ELEMENTS // (b * n))  # bounded memory, and as few chunks (ops) as that allows
    if chunk >= n:
        best, parent = None, None
    else:
        best, parent = metric.new_full((b, n), float("-inf")), idx.expand(b, n).clone()
    for start in range(0, n, chunk):
        rows = slice(start, min(n, start + chunk))
        sim = metric[:, rows] @ metric.transpose(1, 2)  # [B, c, n]
        dt = t[:, rows, None] - t[:, None, :]  # t_i - t_j
        after = dt > 0
        index_before = shape_constant(("index_before", n, start, rows.stop, keys.device),
                                      lambda: idx[None, :] < idx[rows, None])  # [c, n]: j < i
        earlier = after | ((dt == 0) & index_before)  # strict (t, index) order
        near = after & (dt <= 1 + _EPS)
        near &= torch.cdist(place[:, rows, 1:], place[:, :, 1:], p=float("inf")) <= half  # max(|dh|, |dw|)
        # windowed matches keep their similarity, other earlier tokens rank after every one of them
        penalty = torch.full_like(sim, float("-inf")).masked_fill_(earlier, -_FALLBACK).masked_fill_(near, 0.0)
        if best is None:  # one chunk: its result is the whole
            best, parent = (sim + penalty).max(dim=-1)
        else:
            best[:, rows], parent[:, rows] = (sim + penalty).max(dim=-1)
    sources = best.topk(r, dim=1).indices  # [B, r]
    target = idx.expand(b, n).clone().scatter_(1, sources, parent.gather(1, sources))
    target = resolve_chains(target, r.bit_length())  # every parent precedes its child: no cycles
    keep = torch.ones(b, n, dtype=torch.bool, device=keys.device).scatter_(1, sources, False)
    prefix = torch.arange(p, device=keys.device).expand(b, -1)
    return merge_into_plan(torch.cat([keep.new_ones(b, p), keep], dim=1), torch.cat([prefix, target + p], dim=1),
                           num_out=p + n - r)


@torch.no_grad()
def frame_merge_plan(keys: Tensor, grid: Grid, r: int, num_prefix: int) -> tuple[MergePlan, Grid]:
    """Merge the r most similar adjacent frame pairs place by place; returns the plan and grid (T-r, H, W)."""
    frames, height, width = grid
    hw, p, b = height * width, num_prefix, keys.shape[0]
    metric = _normalise(keys[:, p:]).reshape(b, frames, hw, -1)  # [B, T*HW, d] -> [B, T, HW, d]
    similarity = (metric[:, 1:] * metric[:, :-1]).sum(-1).mean(-1)  # [B, T-1], frame t+1 vs frame t
    joined = torch.zeros_like(similarity, dtype=torch.bool).scatter_(1, similarity.topk(r, dim=1).indices, True)
    group = torch.cat([joined.new_zeros(b, 1, dtype=torch.long), (~joined).long()], dim=1).cumsum(1)  # [B, T]
    dest = p + group[:, :, None] * hw + torch.arange(hw, device=keys.device)  # [B, T, HW]
    prefix = torch.arange(p, device=keys.device).expand(b, -1)
    new = (frames - r, height, width)
    return MergePlan(dest=torch.cat([prefix, dest.reshape(b, -1)], dim=1), num_out=p + (frames - r) * hw), new


@register_reducer("cross_frame")
class CrossFrameMerge(Reducer):
    """Merge tokens (or whole frames) that repeat across adjacent frames.

    r: per scheduled block, tokens merged over the whole clip (mode=tokens) or frames removed
        (mode=frames); 0 = baseline.
    layers: scheduled blocks ("0,2", a list, or None/"all" = every block).
    window: spatial neighbourhood (odd, window x window) in the previous frame that a token is
        compared with (mode=tokens).
    mode: "tokens" (merge single tokens; the grid is gone afterwards) or "frames" (merge whole
        adjacent frames; the grid (T - r, H, W) stays, so divided attention continues).
    """

    divided_attention = (
        "mode=frames: exact (keeps the grid, fewer frames); "
        "mode=tokens: approximate (tokens spanning frames are placed by their patches)"
    )

    def __init__(self, r: int = 0, layers: LayersArg = None, window: int = 3, mode: str = "tokens") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"cross_frame: mode={mode!r}; choose one of: {', '.join(MODES)}")
        if int(r) < 0:
            raise ValueError(f"cross_frame: r={r} must be >= 0")
        if int(window) < 1 or int(window) % 2 == 0:
            raise ValueError(f"cross_frame: window={window} must be an odd number >= 1 (a centred neighbourhood)")
        self.r, self.layers, self.window, self.mode = int(r), layers, int(window), mode
        self.active: tuple[int, ...] = ()

    def bind(self, spec: BackboneSpec) -> None:
        super().bind(spec)
        frames, height, width = spec.grid
        if frames < 2:
            raise ValueError(
                f"cross_frame: the blocks of this backbone see grid {spec.grid}, a single frame, so there is nothing "
                "to merge across frames (ViViT's factorised encoder runs its spatial blocks per frame); "
                "use a joint or divided backbone"
            )
        layers = parse_layers(self.layers, spec.depth)
        self.active = layers if self.r > 0 else ()
        total = self.r * len(self.active)
        if self.mode == "frames" and total > frames - 1:
            raise ValueError(
                f"cross_frame: mode=frames removes r={self.r} frames at each of {len(self.active)} blocks ({total}), "
                f"but the clip has {frames} frames; at most {frames - 1} can go"
            )
        later = (frames - 1) * height * width
        if self.mode == "tokens" and total > later:
            raise ValueError(
                f"cross_frame: r={self.r} at each of {len(self.active)} blocks merges {total} tokens, more than the "
                f"{later} tokens of frames 1..{frames - 1}; reduce r or schedule fewer layers"
            )

    def request(self, layer: int, state: TokenState) -> Optional[AttnRequest]:
        return AttnRequest(keys=True) if layer in self.active else None

    def reduce(self, state: TokenState, info: AttnInfo, layer: int) -> TokenState:
        if self.mode == "tokens":
            plan = cross_frame_plan(info.keys, state.pos, self.r, self.window, state.num_prefix)
            return apply_plan(state, plan, grid=None, frames=None)
        if state.grid is None:
            raise ValueError(f"cross_frame mode=frames at block {layer}: the tokens no longer form a regular grid")
        plan, grid = frame_merge_plan(info.keys, state.grid, self.r, state.num_prefix)
        return apply_plan(state, plan, grid=grid, frames=grid[0])

    def extra_repr(self) -> str:
        return f"r={self.r}, layers={self.layers}, window={self.window}, mode={self.mode}"
