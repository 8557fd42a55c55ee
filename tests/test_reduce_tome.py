"""`tome` (ToMe bipartite soft matching): the DeiT-S fidelity number, schedules, scopes and options.

The invariants every reducer keeps run from tests/test_invariants.py (rows in tests/reducer_cases.py).
"""
from __future__ import annotations

import pytest
import torch

from reducer_helpers import clip, deit_s, tiny, tracked
from videotok.flops import measure_cost
from videotok.reduce import build_reducer


def test_deit_s_tome_r13_fidelity() -> None:
    cost = measure_cost(deit_s("tome", r=13))
    assert cost.gflops == pytest.approx(2.71, rel=0.03)
    assert cost.tokens_per_block == [197 - 13 * i for i in range(13)]
    assert cost.tokens_per_block[-1] == 41


def test_tome_schedule_with_inflection() -> None:
    trace: list[int] = []
    tiny("vivit_tiny", "tome", r=6, inflection=-0.5, layers="1,2,4")(clip(1), trace=trace)
    # r per layer 9, 6, 3 at blocks 1, 2, 4 (ToMe's schedule over the active blocks; -0.5 decreases)
    assert trace == [145, 145, 136, 130, 130, 127, 127]
    trace = []
    tiny("vivit_tiny", "tome", r=6, inflection=0.5, layers="1,2,4")(clip(1), trace=trace)
    assert trace == [145, 145, 142, 136, 136, 127, 127]  # +0.5 increases: 3, 6, 9


def test_tome_frame_scope_merges_inside_each_frame() -> None:
    model = tiny("timesformer_tiny", "tome", r=3, scope="frame")
    _, state = tracked(model, clip(2))
    t = 8
    assert state.grid is None and state.frames == t
    per_frame = 36 - 3 * 6
    assert state.num_patches == t * per_frame
    frame_of = torch.cat([torch.tensor([-1]), torch.arange(t).repeat_interleave(36)])  # original token -> frame
    src = state.source[:, 1:]  # [B, T*per_frame, N0]
    for f in range(t):
        holders = src[:, f * per_frame : (f + 1) * per_frame]
        # every token of output frame f holds only patches of input frame f, and all of them
        assert float(holders[..., frame_of != f].sum()) == 0.0
        torch.testing.assert_close(holders.sum((1, 2)), torch.full((2,), 36.0))


def test_tome_refuses_a_schedule_that_merges_every_token_and_checks_options() -> None:
    # vivit_fe_tiny's spatial encoder: 36 patches per frame, 6 blocks -> r = 5 is the most
    with pytest.raises(ValueError, match=r"reducer 'tome'.*r=100 at 6 blocks merges 600 of the 36 patch tokens"
                                         r".*allowed: r in 0\.\.5"):
        tiny("vivit_fe_tiny", "tome", r=100)
    with pytest.raises(ValueError, match=r"r=12 at 3 blocks merges 36 of the 36 patch tokens per frame"
                                         r".*allowed: r in 0\.\.11"):
        tiny("timesformer_tiny", "tome", r=12, scope="frame", layers="0,1,2")
    trace: list[int] = []
    tiny("vivit_fe_tiny", "tome", r=5)(clip(1), trace=trace)
    per_frame = [n // 4 - 1 for n in trace]  # patches per frame (4 frames, 1 CLS each)
    assert per_frame == [36, 31, 26, 21, 16, 11, 6]
    with pytest.raises(ValueError, match="scope='video'"):
        build_reducer("tome", r=2, scope="video")
    with pytest.raises(ValueError, match="outside 0..5"):
        tiny("vivit_tiny", "tome", r=2, layers="6")
