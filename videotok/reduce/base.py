"""The Reducer interface: what a strategy asks of a block, and how it hooks into one."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from torch import Tensor, nn

from videotok.reduce.state import Grid, TokenState

if TYPE_CHECKING:  # pragma: no cover
    from videotok.layers.block import Block


@dataclass(frozen=True)
class AttnRequest:
    """What a reducer needs from a block's attention; nothing is computed that nobody asked for."""

    keys: bool = False  # head-averaged keys, the similarity metric
    cls_attn: bool = False  # CLS-to-token attention row, the importance score
    received_attn: bool = False  # mean attention each token receives (importance without CLS)


@dataclass
class AttnInfo:
    keys: Optional[Tensor] = None  # [B, N, head_dim]
    cls_attn: Optional[Tensor] = None  # [B, N], head-averaged
    received_attn: Optional[Tensor] = None  # [B, N], mean over heads and queries


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

    def bind(self, spec: BackboneSpec) -> None:
        """Check the strategy fits the backbone and build any parameters. Raise ValueError if not."""
        self.spec = spec

    def request(self, layer: int, state: TokenState) -> Optional[AttnRequest]:
        return None

    def reduce(self, state: TokenState, info: AttnInfo, layer: int) -> TokenState:
        return state

    def forward_block(self, block: "Block", state: TokenState, layer: int) -> TokenState:
        return block(state, self, layer)

    def extra_repr(self) -> str:
        return self.name
