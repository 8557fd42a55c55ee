"""`cross_frame` (merging repeats across adjacent frames): plans, windows, the frames mode, options.

The invariants every reducer keeps run from tests/test_invariants.py (rows in tests/reducer_cases.py).
"""
from __future__ import annotations

import pytest
import torch

from reducer_helpers import clip, divided_blocks, sgd_losses, tiny, tracked
from videotok.reduce import TokenState
from videotok.reduce.cross_frame import cross_frame_plan, frame_merge_plan


def test_cross_frame_plan_merges_repeats_into_their_predecessor() -> None:
    # two frames of 1 x 3 patches; frame 1's middle patch repeats frame 0's right patch (one step away)
    pos = TokenState.from_grid(torch.zeros(1, 7, 2), (2, 1, 3), num_prefix=1).pos
    keys = torch.tensor([[[0.0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 1, 0.01], [-1, 0, 0]]])
    plan = cross_frame_plan(keys, pos, r=1, window=3, num_prefix=1)
    assert plan.dest.tolist() == [[0, 1, 2, 3, 4, 3, 5]]  # token 5 joins token 3
    # with window 1 the repeat is out of reach; the best same-place match merges instead
    plan = cross_frame_plan(keys, pos, r=1, window=1, num_prefix=1)
    assert plan.num_out == 6 and plan.dest[0, 5] == 2  # token 5 joins token 2, the patch at its place
    # r counts over the whole clip; chains resolve to the earliest token
    plan = cross_frame_plan(keys, pos, r=3, window=3, num_prefix=1)
    assert plan.num_out == 4


def test_cross_frame_chains_follow_to_the_root() -> None:
    # three frames of one patch, all identical: frame 2 -> frame 1 -> frame 0 in one block
    pos = TokenState.from_grid(torch.zeros(1, 4, 2), (3, 1, 1), num_prefix=1).pos
    keys = torch.tensor([[[0.0, 1], [1, 0], [1, 0], [1, 0]]])
    plan = cross_frame_plan(keys, pos, r=2, window=1, num_prefix=1)
    assert plan.dest.tolist() == [[0, 1, 1, 1]] and plan.num_out == 2


def test_cross_frame_tokens_merge_only_nearby_in_the_previous_frame() -> None:
    model = tiny("timesformer_tiny", "cross_frame", r=30, layers="1", window=1)
    start, end = tracked(model, clip(2))
    assert end.num_tokens == 289 - 30 and end.grid is None
    members = end.source[:, 1:] > 0  # [B, n, N0]
    t, h, w = start.pos[0].unbind(-1)  # original patch positions
    for b in range(2):
        for holder in members[b]:
            idx = holder.nonzero().squeeze(1)
            assert len(set(h[idx].tolist())) == 1 and len(set(w[idx].tolist())) == 1  # the same place
            frames = sorted(t[idx].tolist())
            assert frames == list(range(int(frames[0]), int(frames[0]) + len(frames)))  # adjacent frames


def test_cross_frame_frames_mode_keeps_divided_attention() -> None:
    video = clip(2)
    video[:, :, 5] = video[:, :, 4]  # frames 4 and 5 repeat: the most similar adjacent pair
    model = tiny("timesformer_tiny", "cross_frame", r=1, layers="1", mode="frames")
    assert divided_blocks(model, video) == set(range(6))
    start, end = tracked(model, video)
    assert end.grid == (7, 6, 6) and end.frames == 7 and end.num_tokens == 1 + 7 * 36
    frame_of = torch.cat([torch.tensor([-1]), torch.arange(8).repeat_interleave(36)])
    merged_frame = end.source[:, 1 + 4 * 36 : 1 + 5 * 36] > 0  # output frame 4 = input frames 4 and 5
    assert set(frame_of[merged_frame.any(1)[0]].tolist()) == {4, 5}
    torch.testing.assert_close(end.size[:, 1 + 4 * 36 : 1 + 5 * 36], torch.full((2, 36), 2.0))


def test_frame_merge_plan_groups_runs_of_frames() -> None:
    keys = torch.tensor([[[0.0, 1], [1, 0], [1, 0], [0, 1], [0, 1], [1, 1]]])  # CLS + 5 one-patch frames
    plan, grid = frame_merge_plan(keys, (5, 1, 1), r=2, num_prefix=1)
    assert grid == (3, 1, 1) and plan.dest.tolist() == [[0, 1, 1, 2, 2, 3]]


@pytest.mark.parametrize(
    "backbone,args,match",
    [
        ("vivit_fe_tiny", {"r": 0}, "single frame"),
        ("vivit_tiny", {"r": 1, "mode": "frames"}, "at most 3"),
        ("vivit_tiny", {"r": 40, "layers": "0,1,2"}, "frames 1..3"),
        ("vivit_tiny", {"window": 2}, "odd"),
        ("vivit_tiny", {"mode": "pairs"}, "mode="),
    ],
)
def test_cross_frame_rejects_what_cannot_run(backbone: str, args: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(backbone, "cross_frame", **args)


@pytest.mark.parametrize("args", [{"r": 12, "layers": "0,2"}, {"r": 1, "layers": "1,3", "mode": "frames"}])
def test_a_few_sgd_steps_reduce_the_loss(args: dict) -> None:
    losses = sgd_losses("cross_frame", args)
    assert losses[-1] < 0.7 * losses[0], losses
