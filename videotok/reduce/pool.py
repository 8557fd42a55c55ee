"""`pool`: average pooling of the token grid, the naive baseline that keeps the grid.

At each scheduled block the patch tokens of every frame are averaged over `kernel` x `kernel`
windows (and over `temporal` consecutive frames when temporal > 1), size-weighted, sizes adding.
The result is again a regular, t-major grid (T/temporal, H/kernel, W/kernel), so TimeSformer's
divided attention continues after it. Grids that do not divide get partial windows at the far edge
(ceil): a 7x7 grid pools to 4x4 whose last row and column hold fewer patches, which their sizes
record and proportional attention accounts for. The CLS token is untouched.
"""
from __future__ import annotations

from typing import Optional

from videotok.layers.attention import AttnInfo, AttnRequest
from videotok.reduce.base import BackboneSpec, Reducer
from videotok.reduce.match import MergePlan, apply_plan, pool_plan
from videotok.reduce.registry import register_reducer
from videotok.reduce.schedule import LayersArg, parse_layers
from videotok.reduce.state import Grid, TokenState


def pooled_grid(grid: Grid, kernel: int, temporal: int) -> Grid:
    t, h, w = grid
    return (-(-t // temporal), -(-h // kernel), -(-w // kernel))


@register_reducer("pool")
class GridPool(Reducer):
    """Average-pool the token grid per frame (optionally over time too) at the scheduled blocks.

    layers: blocks that pool; None = the middle block (depth // 2).
    kernel: spatial window (kernel x kernel); 1 = no spatial pooling.
    temporal: frames pooled together; 1 = none. Needs a backbone whose blocks see several frames.
    """

    divided_attention = "exact (keeps a regular, coarser grid)"

    def __init__(self, layers: LayersArg = None, kernel: int = 2, temporal: int = 1) -> None:
        super().__init__()
        if int(kernel) < 1 or int(temporal) < 1:
            raise ValueError(f"pool: kernel={kernel} and temporal={temporal} must be >= 1")
        self.layers, self.kernel, self.temporal = layers, int(kernel), int(temporal)
        self.active: tuple[int, ...] = ()
        self._plans: dict[tuple, tuple[MergePlan, Grid]] = {}

    def bind(self, spec: BackboneSpec) -> None:
        super().bind(spec)
        layers = (spec.depth // 2,) if self.layers is None else parse_layers(self.layers, spec.depth)
        if self.temporal > 1 and spec.grid[0] == 1:
            raise ValueError(
                f"pool: temporal={self.temporal} needs several frames, but the blocks of this backbone see "
                f"grid {spec.grid} (one frame; the factorised encoder's spatial blocks run per frame)"
            )
        self.active = layers if (self.kernel > 1 or self.temporal > 1) else ()
        grid = spec.grid
        for layer in self.active:
            new = pooled_grid(grid, self.kernel, self.temporal)
            if new == grid:
                raise ValueError(
                    f"pool: at block {layer} the grid is already {grid}; pooling it by kernel={self.kernel}, "
                    f"temporal={self.temporal} changes nothing. Schedule fewer layers (layers={self.layers!r})."
                )
            grid = new
        self._plans.clear()

    def request(self, layer: int, state: TokenState) -> Optional[AttnRequest]:
        return AttnRequest() if layer in self.active else None  # needs nothing from attention

    def reduce(self, state: TokenState, info: AttnInfo, layer: int) -> TokenState:
        if state.grid is None:
            raise ValueError(f"pool at block {layer}: the tokens no longer form a regular grid")
        key = (state.grid, state.num_prefix, state.x.device)
        if key not in self._plans:
            self._plans[key] = pool_plan(state.grid, self.kernel, self.temporal, state.num_prefix, state.x.device)
        plan, grid = self._plans[key]
        plan = MergePlan(dest=plan.dest.expand(state.x.shape[0], -1), num_out=plan.num_out)
        return apply_plan(state, plan, grid=grid, frames=grid[0])

    def extra_repr(self) -> str:
        return f"layers={self.layers}, kernel={self.kernel}, temporal={self.temporal}"
