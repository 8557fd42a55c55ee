"""The Reducer interface: what a strategy asks of a block, and how it hooks into one.

What a block reports (AttnRequest, AttnInfo) belongs to the attention (videotok.layers.attention);
reducers depend on the layers, never the other way round: a block only calls the `request` /
`reduce` hook it is handed (videotok.layers.block.ReductionHook), which a Reducer is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from torch import Tensor, nn

from videotok.layers.attention import AttnInfo, AttnRequest
from videotok.reduce.state import Grid, TokenState

__all__ = ["AttnInfo", "AttnRequest", "BackboneSpec", "Reducer"]


@dataclass(frozen=True)
class BackboneSpec:
    """What a reducer may know about the backbone it is bound to (validated once, before any work)."""

    depth: int
    dim: int
    num_heads: int
    grid: Grid  # the token grid entering the first block
    num_prefix: int
    attention: str  # "divided" or "joint"
    model: str = ""


class Reducer(nn.Module):
    """Base class: the full-token baseline. Subclasses override `request` and `reduce`.

    A block calls `request(layer, state)` before its attention; when it returns an AttnRequest, the
    block computes that information and calls `reduce(state, info, layer)` between attention and
    MLP (as ToMe and EViT do), so the MLP already runs on fewer tokens. Strategies that change how a
    whole block runs (semantic tokens) override `forward_block`.
    """

    name: str = "none"
    adds_parameters: bool = False  # True for strategies that must be trained
    # True for strategies that rank tokens by importance (videotok.reduce.importance): pictures of
    # their blocks show it (videotok visualize)
    ranks_by_importance: bool = False
    # True where how many tokens remain depends on the clip's content before any weight is read
    # (rlt): no setting has a fixed cost, so there are no -33 % / -50 % presets of it
    content_aware: bool = False
    # How a TimeSformer block's divided attention runs after this strategy (`videotok reducers`):
    # exact where the tokens keep one counterpart per place and frame, approximate where merged
    # tokens are placed by their patches (videotok.layers.placement).
    divided_attention: str = "exact (the full grid)"

    def bind(self, spec: BackboneSpec) -> None:
        """Check the strategy fits the backbone and build any parameters. Raise ValueError if not."""
        self.spec = spec

    def start(self, state: TokenState, video: Tensor) -> TokenState:
        """The embedded tokens and the clip [B, C, T, H, W] as the model received it -> the state
        entering block 0. Only strategies that act on the pixels before the blocks (rlt) change it."""
        return state

    def request(self, layer: int, state: TokenState) -> Optional[AttnRequest]:
        return None

    def reduce(self, state: TokenState, info: AttnInfo, layer: int) -> TokenState:
        return state

    def forward_block(self, block: nn.Module, state: TokenState, layer: int) -> TokenState:
        """Run `block` (a videotok.layers.block.Block) on `state` with this reducer as its hook."""
        return block(state, self, layer)

    def extra_repr(self) -> str:
        return self.name
