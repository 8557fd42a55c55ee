"""`semantic`: STViT's semantic tokens (Chang et al., "Making Vision Transformers Efficient from A
Token Sparsification View", CVPR 2023), inside video backbones.

A few semantic tokens, initialised by pooling the token grid and recovered by attention, stand in
for all patch tokens from block `layer` on. With L = `layer`:

  blocks 0 .. L-1   ordinary blocks on every token X (divided attention in TimeSformer).
  block L           P = pool(X) over a t x h x w partition of the grid;
                    S1 = Q + Attn_L(Q, K=V=X), Q = [CLS; P];  S1 += MLP_L(norm2(S1)).
  block L+1         S2 = Q' + Attn_{L+1}(Q', K=V=[S1; X]), Q' = S1 + [0; G];  S2 += MLP_{L+1}.
  blocks L+2 ..     joint attention on [CLS; S2] only (the grid is gone).

The two generating layers reuse blocks L and L+1's own pretrained weights (norm1, attention, LayerScale,
norm2, MLP) through `Block.cross_layer`, whose `Attention.cross` projects q for the 1 + S queries only
and k, v for the context only, so a generating layer costs about (N + S) token projections, not N. X is the state
entering block L for both layers (STViT does not update the image tokens in its generating layers);
it travels from block L to L+1 in `TokenState.context`. G are learnable global centres, one per
semantic token (initialised small, trunc-normal std 0.02). The CLS token is the protected prefix:
it is a query of both generating layers (gets no G) and stays first. A backbone without one
(VideoMAE) has an empty prefix: the queries are the semantic tokens alone, and its head averages
them weighted by their sizes (`global_pool="avg"`), as it averages its patch tokens without a reducer.

Choices where the paper is silent or does not fit a video backbone (ours):
  - pooling: `pool="max"` by default, as STViT's released code (adaptive max pooling); "avg" is the
    other option. Pooling runs over a *partition* of the (T, H, W) grid, cell index floor(i * t / T)
    per axis, so each semantic token stands for exactly the patches of its cell: sizes still sum to
    N0 and `pos` is the cell's centre of mass. Where the grid divides evenly (8 -> 2 frames, 16 -> 4)
    this equals torch's adaptive pooling; otherwise (14 -> 4: cells 4,3,4,3) adaptive pooling would
    overlap its windows and we do not.
  - an explicit temporal (or spatial) token count larger than the grid is rejected at bind, not
    clamped: the token count is what sets the GFLOPs, so it must be what the configuration says.
    Left unset (tokens=None), it follows the issue's defaults: 2x4x4 when the blocks see several
    frames, 1x4x4 when they see one (an image model; ViViT's factorised encoder, whose spatial
    blocks run per frame, so its semantic tokens are per frame, S per frame).
  - the CLS token is a query of both generating layers and, as part of X, also a key of both (in
    the second layer it appears twice among the keys: updated in S1 and as it entered block L).
  - attention inside the generating layers is plain (no size bias), and so is attention over the
    semantic tokens afterwards (`proportional=False`): semantic tokens are cluster centres recovered
    by attention, not size-weighted averages, and STViT has no proportional attention. Sizes are kept
    as bookkeeping (which patches a semantic token was initialised from) and weight `global_pool="avg"`.
  - TimeSformer: blocks before L run divided attention; the generating and later blocks run joint
    attention with their spatial weights (their temporal branch is unused): the semantic tokens carry
    no place (`TokenState.owner` is None). Trained with its global centres, the model learns that
    attention; with global_centres=false it runs training-free and the temporal branch is lost.
"""
from __future__ import annotations

from typing import Optional

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn

from videotok.layers.block import Block
from videotok.reduce.base import BackboneSpec, Reducer
from videotok.reduce.match import MergePlan, apply_plan
from videotok.reduce.registry import register_reducer
from videotok.reduce.state import Grid, TokenState

POOLS = ("max", "avg")
DEFAULT_TOKENS: Grid = (2, 4, 4)


def default_tokens(grid: Grid) -> Grid:
    """The issue's defaults: 2x4x4 when the blocks see several frames (8 frames, or 4 tubelets),
    1x4x4 when they see one (an image model, or ViViT's factorised encoder); never more cells than
    the grid has along an axis."""
    return tuple(min(want, have) for want, have in zip((2 if grid[0] > 1 else 1, 4, 4), grid))  # type: ignore[return-value]


def parse_tokens(tokens: str) -> Grid:
    """"2x4x4" -> (2, 4, 4): the semantic token grid, T x H x W."""
    parts = str(tokens).lower().replace(" ", "").split("x")
    try:
        grid = tuple(int(v) for v in parts)
    except ValueError:
        grid = ()
    if len(grid) != 3 or min(grid) < 1:
        raise ValueError(f"semantic: tokens={tokens!r}; expected TxHxW with positive integers, for example 2x4x4 or 1x4x4")
    return grid  # type: ignore[return-value]


def cell_index(grid: Grid, cells: Grid, device: torch.device) -> Tensor:
    """Cell of every patch of a t-major `grid` when it is partitioned into `cells` (floor(i * c / n)
    per axis): [T*H*W] long in [0, t*h*w)."""
    (t, h, w), (ct, ch, cw) = grid, cells
    ti = torch.arange(t, device=device) * ct // t
    hi = torch.arange(h, device=device) * ch // h
    wi = torch.arange(w, device=device) * cw // w
    return ((ti[:, None, None] * ch + hi[None, :, None]) * cw + wi[None, None, :]).reshape(-1)


@register_reducer("semantic")
class SemanticTokens(Reducer):
    """Replace the patch tokens by a few semantic tokens from block `layer` on (STViT).

    layer: index of the first generating block (blocks layer and layer+1 generate; 4 = 4 ordinary +
        2 generating + the rest on semantic tokens).
    tokens: semantic token grid "TxHxW" (2x4x4 = 32 tokens for 8 frames; 1x4x4 for one frame or for
        ViViT's factorised encoder, whose spatial blocks see one frame). None/"auto" (default) picks
        2x4x4 when the blocks see several frames and 1x4x4 when they see one.
    pool: "max" (STViT's code) or "avg": how P is initialised from each cell.
    global_centres: add the learnable global centres G in the second generating layer. They are the
        only parameters semantic adds: without them it reuses the backbone's own weights and runs
        training-free (`adds_parameters` follows this option).
    proportional: size-aware attention over the semantic tokens (off: STViT's plain attention).
    """

    divided_attention = (
        "divided before `layer`; joint over the semantic tokens after it (they have no places; trained with "
        "global_centres, which learns that attention; training-free without them, it is an approximation)"
    )

    def __init__(
        self,
        layer: int = 4,
        tokens: Optional[str] = None,
        pool: str = "max",
        global_centres: bool = True,
        proportional: bool = False,
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"semantic: pool={pool!r}; choose one of: {', '.join(POOLS)}")
        self.layer, self.pool = int(layer), pool
        self.requested_tokens = None if tokens in (None, "", "auto") else parse_tokens(tokens)
        self.tokens: Grid = self.requested_tokens or DEFAULT_TOKENS
        self.global_centres, self.proportional = bool(global_centres), bool(proportional)
        self.adds_parameters = self.global_centres
        self.centres: Optional[nn.Parameter] = None
        self._cells: dict[tuple, MergePlan] = {}

    @property
    def num_semantic(self) -> int:
        t, h, w = self.tokens
        return t * h * w

    def bind(self, spec: BackboneSpec) -> None:
        super().bind(spec)
        self.tokens = self.requested_tokens or default_tokens(spec.grid)
        if not 0 <= self.layer <= spec.depth - 2:
            raise ValueError(
                f"semantic: layer={self.layer}; blocks layer and layer+1 generate the semantic tokens, so layer "
                f"must lie in 0..{spec.depth - 2} for this {spec.depth}-block backbone"
            )
        too_big = [axis for axis, want, have in zip("THW", self.tokens, spec.grid) if want > have]
        if too_big:
            t, h, w = self.tokens
            hint = ""
            if spec.grid[0] == 1 and t > 1:
                hint = (f"; the blocks of this backbone see one frame (ViViT's factorised encoder runs its spatial "
                        f"blocks per frame), use tokens=1x{h}x{w}")
            raise ValueError(
                f"semantic: tokens={t}x{h}x{w} asks for more cells along {', '.join(too_big)} than the token grid "
                f"{spec.grid} entering the blocks has{hint}"
            )
        self.centres = None
        if self.global_centres:
            self.centres = nn.Parameter(torch.zeros(1, self.num_semantic, spec.dim))
            trunc_normal_(self.centres, std=0.02)
        self._cells.clear()

    # --- the three regimes -------------------------------------------------------------------------

    def forward_block(self, block: Block, state: TokenState, layer: int) -> TokenState:
        if layer < self.layer:
            return block(state, self, layer)
        if layer == self.layer:
            return self._first_generating(block, state)
        if layer == self.layer + 1:
            return self._second_generating(block, state)
        if self.proportional:
            return block(state, self, layer)
        # plain attention over the semantic tokens: sizes are bookkeeping here, not merge weights
        return block(state.replace(merged=False), self, layer).replace(merged=True)

    def _first_generating(self, block: Block, state: TokenState) -> TokenState:
        if state.grid is None:
            raise ValueError(f"semantic at block {self.layer}: the tokens no longer form a regular grid to pool")
        cells = self.initial_tokens(state)  # [CLS; P] with the cells' sizes and positions
        s1 = block.cross_layer(cells.x, state.x)
        # owner=None: semantic tokens are cluster centres without places, so later blocks attend jointly
        return cells.replace(x=s1, context=state.x, owner=None)

    def _second_generating(self, block: Block, state: TokenState) -> TokenState:
        if state.context is None:
            raise ValueError(
                f"semantic at block {self.layer + 1}: the image tokens of block {self.layer} did not arrive "
                "(TokenState.context is empty); run the blocks through reducer.forward_block in order"
            )
        p = state.num_prefix
        queries = state.x
        if self.centres is not None:
            centres = self.centres.to(queries.dtype).expand(queries.shape[0], -1, -1)
            queries = torch.cat([queries[:, :p], queries[:, p:] + centres], dim=1)  # [B, P + S, C]
        context = torch.cat([state.x, state.context], dim=1)  # [S1; X]: [B, P + S + N, C]
        return state.replace(x=block.cross_layer(queries, context), context=None)

    # --- initialisation ---------------------------------------------------------------------------

    def initial_tokens(self, state: TokenState) -> TokenState:
        """[prefix; P]: the pooled semantic tokens, each with the size, position and source of its cell."""
        p, b = state.num_prefix, state.x.shape[0]
        key = (state.grid, p, state.x.device)
        if key not in self._cells:
            index = cell_index(state.grid, self.tokens, state.x.device)
            prefix = torch.arange(p, device=state.x.device)
            dest = torch.cat([prefix, p + index]).unsqueeze(0)  # [1, P + THW]
            self._cells[key] = MergePlan(dest=dest, num_out=p + self.num_semantic)
        plan = self._cells[key]
        cells = apply_plan(state, MergePlan(dest=plan.dest.expand(b, -1), num_out=plan.num_out), grid=None, frames=None)
        if self.pool == "avg":  # apply_plan's size-weighted mean (all sizes are 1 before any reduction)
            return cells
        patches = state.x[:, p:]  # [B, THW, C]
        index = (plan.dest[:, p:] - p).unsqueeze(-1).expand(b, -1, patches.shape[-1])  # [B, THW, C]
        pooled = patches.new_zeros(b, self.num_semantic, patches.shape[-1])
        pooled = pooled.scatter_reduce(1, index, patches, reduce="amax", include_self=False)  # [B, S, C]
        return cells.replace(x=torch.cat([state.x[:, :p], pooled], dim=1))

    def extra_repr(self) -> str:
        t, h, w = self.tokens
        return (f"layer={self.layer}, tokens={t}x{h}x{w}, pool={self.pool}, global_centres={self.global_centres}, "
                f"proportional={self.proportional}")
