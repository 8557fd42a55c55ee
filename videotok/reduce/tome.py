"""`tome`: Token Merging (Bolya et al., 2023) inside video backbones.

Bipartite soft matching on the block's head-averaged keys (cosine): tokens alternate into sets A and
B, each A token picks its most similar B token, and the r most similar pairs merge (size-weighted,
sizes add). The CLS token is never merged; r is capped at half the mergeable tokens (ToMe), and
`bind` refuses a schedule that this cap would lower: one where some block asks for more than half the
patch tokens entering it (per frame for scope="frame" and "tube"), so what binds is exactly what runs.
Proportional attention follows automatically from `state.merged`.

Scopes (TimeSformer keeps its divided attention in all three: videotok.layers.placement):
  global  match over all spatio-temporal tokens; tokens may span frames, divided attention places
          each at its patches (approximate).
  frame   match inside each frame with the same r per frame (r counts per frame); the tokens stay T
          equal per-frame groups (`frames` = T), each frame merged its own way (approximate).
  tube    one plan for every frame, made from the frame-averaged metric (r counts per frame): the
          same patches merge in every frame, so each token has exactly one counterpart per frame
          and divided attention is exact, a TimeSformer on a coarser spatial partition.
"""
from __future__ import annotations

from typing import Optional

from videotok.layers.attention import AttnInfo, AttnRequest
from videotok.reduce.base import BackboneSpec, Reducer
from videotok.reduce.match import apply_plan, bipartite_plan
from videotok.reduce.registry import register_reducer
from videotok.reduce.schedule import LayersArg, check_r_schedule, parse_layers, r_per_layer
from videotok.reduce.state import TokenState

SCOPES = ("global", "frame", "tube")


@register_reducer("tome")
class ToMe(Reducer):
    """Merge r tokens per scheduled block by bipartite soft matching.

    r: tokens merged per block (per frame for scope="frame"); 0 is the baseline.
    layers: blocks that merge ("3,6,9", a list, or None/"all" = every block).
    inflection: ToMe's (r, inflection) schedule over the merging blocks, ToMe's sign and rounding: 0
        constant, > 0 increasing (back-loaded), < 0 decreasing (front-loaded; -1 is the paper's
        "decreasing schedule").
    scope: "global" (all spatio-temporal tokens), "frame" (each frame alone, equal r per frame) or
        "tube" (the same merges in every frame, r per frame).
    """

    divided_attention = "scope=tube: exact; scope=global and frame: approximate (tokens placed by their patches)"

    def __init__(self, r: int = 0, layers: LayersArg = None, inflection: float = 0.0, scope: str = "global") -> None:
        super().__init__()
        if scope not in SCOPES:
            raise ValueError(f"tome: scope={scope!r}; choose one of: {', '.join(SCOPES)}")
        if int(r) < 0:
            raise ValueError(f"tome: r={r} must be >= 0")
        self.r, self.layers, self.inflection, self.scope = int(r), layers, float(inflection), scope
        self.schedule: dict[int, int] = {}

    def bind(self, spec: BackboneSpec) -> None:
        """Fix the per-block r; refuse, before any work, a schedule in which some block asks for more
        than half the patch tokens entering it (per frame for scope="frame"): at run time matching
        would cap r there and quietly merge less than asked."""
        super().bind(spec)
        active = parse_layers(self.layers, spec.depth)
        amounts = r_per_layer(self.r, len(active), self.inflection)
        self.schedule = {layer: r for layer, r in zip(active, amounts) if r > 0}
        t, h, w = spec.grid
        patches, where = (h * w, "per frame") if self.scope in ("frame", "tube") else (t * h * w, "in the sequence")
        check_r_schedule(self.name, self.r, amounts, patches, where, self.inflection, layers=active)

    def request(self, layer: int, state: TokenState) -> Optional[AttnRequest]:
        return AttnRequest(keys=True) if layer in self.schedule else None

    def reduce(self, state: TokenState, info: AttnInfo, layer: int) -> TokenState:
        r = self.schedule.get(layer, 0)
        p = state.num_prefix
        if self.scope == "global":
            plan = bipartite_plan(info.keys, r, p, first_a=p % 2)
            return state if plan.num_out == state.num_tokens else apply_plan(state, plan, grid=None, frames=None)
        frames = state.frames
        if frames is None:
            raise ValueError(f"tome scope={self.scope!r} at block {layer}: the tokens no longer form per-frame groups")
        # r merges inside every frame (scope=tube: the same ones, from the frame-averaged keys)
        plan = bipartite_plan(info.keys, r, p, groups=frames, tube=self.scope == "tube")
        return state if plan.num_out == state.num_tokens else apply_plan(state, plan, grid=None, frames=frames)

    def extra_repr(self) -> str:
        return f"r={self.r}, layers={self.layers}, inflection={self.inflection}, scope={self.scope}"
