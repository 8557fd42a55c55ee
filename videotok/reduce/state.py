"""TokenState: the tokens of a video transformer and what travels with them between blocks.

Keeping `size`, `pos` and `grid` next to the features is what lets every reducer merge truthfully
(size-weighted), lets attention stay proportional, and lets divided attention know whether the
tokens still form the full regular grid instead of guessing it from the token count.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

import torch
from torch import Tensor

Grid = tuple[int, int, int]

# what a Layout (videotok.layers.placement) is computed from: changing any of them discards it
_LAYOUT_INPUTS = frozenset({"owner", "pos", "size", "padded", "num_prefix", "grid"})


@dataclass
class TokenState:
    """Tokens entering or leaving a block.

    x:       [B, N, C] tokens, the `num_prefix` protected tokens (CLS) first.
    size:    [B, N] float, how many original tokens each token stands for; sums to N0.
    pos:     [B, N, 3] float, (t, h, w) centre of mass of the original patches a token covers.
    grid:    (T, H, W) while the patch tokens are the full regular grid in t-major order, else None.
    num_prefix: number of protected leading tokens.
    source:  optional [B, N, N0] float, the share of each original token a token holds (visualisation).
    frames:  T while the patch tokens are T equal, contiguous per-frame groups (t-major), even after
             the spatial grid is gone (per-frame merging); None once frames mix.
    merged:  True once any token stands for more than one original token, so attention must be
             proportional; lets the unit-size case skip the bias (exactly plain attention).
    context: optional [B, M, C] keys-only tokens a reducer hands to the next block (semantic tokens).
    owner:   optional [B, T0, H0, W0] long: for every patch of the grid the tokens started from, the
             index (among the patch tokens, prefix excluded) of the token now holding it, -1 once
             dropped. It is what lets divided attention run on tokens that no longer form the grid:
             spatial attention groups the tokens by frame, temporal attention finds the token at the
             same place in every other frame. None where a strategy replaces the tokens by something
             without places (semantic tokens), so later blocks attend jointly.
    mass:    optional [B, N] float, how much each token counts in proportional attention, in later
             merges' feature averages and in mean pooling, where a strategy makes that differ from
             `size` (vid_tldr's saliency-weighted sizes; rlt's authors' form, where a kept token
             counts once whatever its run). None: `size` plays that part.
    padded:  True when some patch tokens are padding (size 0), because a content-aware strategy (rlt)
             keeps a different number of tokens per video: padding holds no patch, is masked as a
             key in every attention and is left out of pooling (see `valid`). Nothing merges it
             into real tokens: rlt is the model's one reducer and nothing runs after it, and
             apply_plan weighs a size-0 token at zero, so no merge could move a real token anyway.
    discarded: True once a plan may have discarded patches (then `owner` holds -1 somewhere); False
             while every original patch is known to be held by a token, from the plans alone (no look
             at the data), so divided attention knows no temporal key is missing without a host sync.
    layout:  the videotok.layers.placement.Layout divided attention computed from `owner`, `pos` and
             the padding, kept so the blocks between two reductions place the tokens once; `replace`
             drops it whenever one of those changes.
    """

    x: Tensor
    size: Tensor
    pos: Tensor
    grid: Optional[Grid]
    num_prefix: int
    source: Optional[Tensor] = None
    frames: Optional[int] = None
    merged: bool = False
    context: Optional[Tensor] = None
    owner: Optional[Tensor] = None
    mass: Optional[Tensor] = None
    padded: bool = False
    discarded: bool = False
    layout: Optional[Any] = None

    @classmethod
    def from_grid(cls, x: Tensor, grid: Grid, num_prefix: int, track_source: bool = False,
                  places: bool = True) -> "TokenState":
        """Start state for `x` = [prefix; patch tokens of `grid` in t-major order]. places: track `owner`
        (divided attention places merged tokens by it); joint attention reads no owner, and following it
        through every merge costs ops for nothing."""
        batch, num_tokens, _ = x.shape
        t, h, w = grid
        if num_tokens != num_prefix + t * h * w:
            raise ValueError(f"{num_tokens} tokens do not match {num_prefix} prefix + grid {grid}")
        device = x.device
        coords = torch.stack(
            torch.meshgrid(
                torch.arange(t, device=device, dtype=torch.float32),
                torch.arange(h, device=device, dtype=torch.float32),
                torch.arange(w, device=device, dtype=torch.float32),
                indexing="ij",
            ),
            dim=-1,
        ).reshape(t * h * w, 3)  # [THW, 3]
        centre = coords.mean(0, keepdim=True).expand(num_prefix, 3)  # prefix tokens sit at the centre
        pos = torch.cat([centre, coords], 0).unsqueeze(0).expand(batch, -1, -1)  # [B, N, 3]
        size = torch.ones(batch, num_tokens, device=device, dtype=torch.float32)
        source = None
        if track_source:
            source = torch.eye(num_tokens, device=device, dtype=torch.float32).unsqueeze(0).expand(batch, -1, -1)
        owner = None
        if places:
            owner = torch.arange(t * h * w, device=device).reshape(1, t, h, w).expand(batch, -1, -1, -1)  # [B, T, H, W]
        return cls(x=x, size=size, pos=pos, grid=grid, num_prefix=num_prefix, source=source, frames=t, owner=owner)

    @property
    def num_tokens(self) -> int:
        return self.x.shape[1]

    @property
    def num_patches(self) -> int:
        return self.x.shape[1] - self.num_prefix

    @property
    def weight(self) -> Tensor:
        """[B, N]: what each token counts for in attention and pooling (`mass`, else `size`)."""
        return self.size if self.mass is None else self.mass

    @property
    def valid(self) -> Optional[Tensor]:
        """[B, N] bool, False for padding tokens (size 0); None when there is no padding."""
        return self.size > 0 if self.padded else None

    def replace(self, **changes) -> "TokenState":
        if "layout" not in changes and not _LAYOUT_INPUTS.isdisjoint(changes):
            changes["layout"] = None
        return replace(self, **changes)
