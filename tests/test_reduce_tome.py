"""`tome` (ToMe bipartite soft matching): the DeiT-S fidelity number, schedules, scopes and options.

The invariants every reducer keeps run from tests/test_invariants.py (rows in tests/reducer_cases.py).
"""
from __future__ import annotations

import pytest
import torch

from reducer_helpers import clip, deit_s, tiny, tracked
from videotok.flops import measure_cost
from videotok.reduce import build_reducer
from videotok.reduce.schedule import largest_r, parse_layers, r_per_layer


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


def test_deit_s_tome_refuses_r16_that_the_half_cap_would_lower() -> None:
    # 196 patches, 12 blocks: r=16 asks for 192 merges, but block 11 sees 20 patches and may merge
    # only 10, so only 186 would run (11 tokens left, not 5). r=15 is the most that runs as asked.
    with pytest.raises(ValueError, match=r"reducer 'tome': r=16 .*asks block 11 to remove 16 of the 20 patch tokens "
                                         r"in the sequence entering it, .*\(10\).*186 of the 192 tokens asked.*"
                                         r"allowed: r in 0\.\.15 "):
        deit_s("tome", r=16)
    with pytest.raises(ValueError, match=r"r=17 \(inflection=-1\) asks block 8 to remove 9 of the 15 .*"
                                         r"allowed: r in 0\.\.16 "):
        deit_s("tome", r=17, inflection=-1)  # decreasing: 34, 31, ... runs short at block 8
    cost = measure_cost(deit_s("tome", r=15))
    assert cost.tokens_per_block == [197 - 15 * i for i in range(13)]


def test_tome_refuses_a_schedule_the_cap_would_lower_and_checks_options() -> None:
    # vivit_fe_tiny's spatial encoder: 36 patches per frame, 6 blocks -> r = 5 is the most
    with pytest.raises(ValueError, match=r"reducer 'tome': r=100 .*asks block 0 to remove 100 of the 36 patch tokens"
                                         r".*allowed: r in 0\.\.5"):
        tiny("vivit_fe_tiny", "tome", r=100)
    # 36 -> 26 -> 16 per frame: block 2 may merge only 8 of its 16, so r=10 would end at 8 tokens, not 6
    with pytest.raises(ValueError, match=r"r=10 .*asks block 2 to remove 10 of the 16 patch tokens per frame entering "
                                         r"it, .*\(8\).*allowed: r in 0\.\.9"):
        tiny("timesformer_tiny", "tome", r=10, scope="frame", layers="0,1,2")
    trace = []
    tiny("timesformer_tiny", "tome", r=9, scope="frame", layers="0,1,2")(clip(1), trace=trace)
    assert [(n - 1) // 8 for n in trace] == [36, 27, 18, 9, 9, 9, 9]  # patches per frame (8 frames, 1 CLS)
    trace: list[int] = []
    tiny("vivit_fe_tiny", "tome", r=5)(clip(1), trace=trace)
    per_frame = [n // 4 - 1 for n in trace]  # patches per frame (4 frames, 1 CLS each)
    assert per_frame == [36, 31, 26, 21, 16, 11, 6]
    with pytest.raises(ValueError, match="scope='video'"):
        build_reducer("tome", r=2, scope="video")
    with pytest.raises(ValueError, match="outside 0..5"):
        tiny("vivit_tiny", "tome", r=2, layers="6")


@pytest.mark.parametrize(
    "backbone,name,args,patches,groups",
    [
        ("vivit_tiny", "tome", {}, 144, 1),
        ("vivit_tiny", "tome", {"inflection": -1.0}, 144, 1),
        ("vivit_tiny", "tome", {"inflection": 1.0, "layers": "1,2,4"}, 144, 1),
        ("timesformer_tiny", "tome", {"scope": "frame", "inflection": -0.5}, 36, 8),
        ("vivit_fe_tiny", "tome", {"inflection": 0.3}, 36, 4),  # the spatial encoder runs per frame
        ("vivit_tiny", "random", {"inflection": -1.0}, 144, 1),
        ("timesformer_tiny", "random", {"scope": "frame", "layers": "0,2,3"}, 36, 8),
    ],
)
def test_what_bind_accepts_is_exactly_what_runs(backbone, name, args, patches, groups) -> None:
    """At the largest r bind accepts, every block removes exactly its scheduled r (per group); one
    more is refused."""
    depth = 6
    num_layers = len(parse_layers(args.get("layers"), depth))
    largest = largest_r(patches, num_layers, args.get("inflection", 0.0))
    with pytest.raises(ValueError, match=rf"allowed: r in 0\.\.{largest} "):
        tiny(backbone, name, r=largest + 1, **args)
    model = tiny(backbone, name, r=largest, **args)
    trace: list[int] = []
    with torch.no_grad():
        model(clip(1), trace=trace)
    schedule = model.reducer.schedule
    expected = [trace[0]]
    for block in range(depth):
        expected.append(expected[-1] - groups * schedule.get(block, 0))
    assert trace == expected
    assert trace[0] - trace[-1] == groups * sum(r_per_layer(largest, num_layers, args.get("inflection", 0.0)))
