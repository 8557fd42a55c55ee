"""`pool` (spatial, optionally temporal, average pooling): grids kept, divided attention, bind checks.

The invariants every reducer keeps run from tests/test_invariants.py (rows in tests/reducer_cases.py).
"""
from __future__ import annotations

import pytest

from reducer_helpers import clip, tiny, tracked
from videotok.reduce import BackboneSpec, build_reducer


def test_pool_keeps_a_grid_and_divided_attention() -> None:
    model = tiny("timesformer_tiny", "pool", layers="1,3")
    ran: set[int] = set()
    for i, block in enumerate(model.blocks):
        block.temporal_attn.register_forward_hook(lambda *_, i=i: ran.add(i))
    _, state = tracked(model, clip(1))
    assert ran == set(range(6))  # divided attention in every block: the grid survives pooling
    assert state.grid == (8, 2, 2) and state.frames == 8  # 6x6 -> 3x3 -> 2x2 (partial windows)
    assert state.size[0, 1:5].tolist() == [16.0, 8.0, 8.0, 4.0]


def test_pool_temporal_and_bind_checks() -> None:
    _, state = tracked(tiny("timesformer_tiny", "pool", layers="0", temporal=2, kernel=3), clip(1))
    assert state.grid == (4, 2, 2) and bool((state.size[:, 1:] == 18).all())
    assert build_reducer("pool").bind(BackboneSpec(12, 8, 1, (8, 14, 14), 1, "divided")) is None
    with pytest.raises(ValueError, match="changes nothing"):
        tiny("vivit_tiny", "pool", layers="0,1,2,3")  # 6x6 -> 3x3 -> 2x2 -> 1x1 -> 1x1
    with pytest.raises(ValueError, match="temporal=2 needs several frames"):
        tiny("vivit_fe_tiny", "pool", temporal=2)
    with pytest.raises(ValueError, match="kernel=0"):
        build_reducer("pool", kernel=0)
