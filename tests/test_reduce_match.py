"""Merge plans and bipartite matching (videotok/reduce/match.py): size-weighted merges, sizes add."""
from __future__ import annotations

import pytest
import torch

from videotok.reduce.match import MergePlan, apply_plan, bipartite_soft_matching, keep_fuse_plan, keep_plan, merge_into_plan, per_frame_plan, pool_plan
from videotok.reduce.state import TokenState


def state_of(x: torch.Tensor, grid=(1, 2, 3), track_source: bool = True) -> TokenState:
    return TokenState.from_grid(x, grid, num_prefix=1, track_source=track_source)


def test_apply_plan_is_size_weighted_and_sizes_add() -> None:
    x = torch.arange(7 * 2, dtype=torch.float32).reshape(1, 7, 2)
    s = state_of(x).replace(size=torch.tensor([[1.0, 1, 3, 1, 1, 1, 1]]))
    # tokens 2 (size 3) and 3 (size 1) merge into slot 2; token 6 is dropped
    plan = MergePlan(dest=torch.tensor([[0, 1, 2, 2, 3, 4, -1]]), num_out=5)
    out = apply_plan(s, plan, grid=None, frames=None)
    assert out.num_tokens == 5 and out.merged and out.grid is None
    torch.testing.assert_close(out.x[0, 2], (3 * x[0, 2] + x[0, 3]) / 4)
    torch.testing.assert_close(out.size[0], torch.tensor([1.0, 1, 4, 1, 1]))
    torch.testing.assert_close(out.pos[0, 2], (3 * s.pos[0, 2] + s.pos[0, 3]) / 4)
    assert float(out.source[0, :, 6].sum()) == 0.0
    torch.testing.assert_close(out.x[0, [0, 1, 3, 4]], x[0, [0, 1, 4, 5]])  # the others pass unchanged


def test_apply_plan_weight_changes_features_only() -> None:
    x = torch.randn(1, 7, 3)
    s = state_of(x)
    plan = MergePlan(dest=torch.tensor([[0, 1, 2, 3, 4, 5, 5]]), num_out=6,
                     weight=torch.tensor([[1.0, 1, 1, 1, 1, 3, 1]]))
    out = apply_plan(s, plan)
    torch.testing.assert_close(out.x[0, 5], (3 * x[0, 5] + x[0, 6]) / 4)
    torch.testing.assert_close(out.pos[0, 5], (s.pos[0, 5] + s.pos[0, 6]) / 2)  # still centre of mass
    assert float(out.size[0, 5]) == 2.0


def test_apply_plan_keeps_dtype_and_passes_grid() -> None:
    x = torch.randn(2, 7, 4, dtype=torch.bfloat16)
    out = apply_plan(state_of(x), keep_plan(torch.ones(2, 7, dtype=torch.bool)), grid=(1, 2, 3), frames=1)
    assert out.x.dtype == torch.bfloat16 and out.grid == (1, 2, 3) and out.frames == 1
    assert not out.merged  # nothing merged: attention stays plain
    torch.testing.assert_close(out.x, x)


def test_keep_plan_requires_equal_counts() -> None:
    keep = torch.tensor([[True, True, False], [True, True, True]])
    with pytest.raises(ValueError, match="same number"):
        keep_plan(keep)


def test_merge_into_plan_and_keep_fuse_plan() -> None:
    keep = torch.tensor([[True, False, True, True, False]])
    target = torch.tensor([[0, 3, 0, 0, 2]])
    assert merge_into_plan(keep, target).dest.tolist() == [[0, 2, 1, 2, 1]]
    fused = keep_fuse_plan(keep, fuse=True)
    assert fused.dest.tolist() == [[0, 3, 1, 2, 3]] and fused.num_out == 4
    dropped = keep_fuse_plan(keep, fuse=False)
    assert dropped.dest.tolist() == [[0, -1, 1, 2, -1]] and dropped.num_out == 3


def test_per_frame_plan_offsets_frames_after_the_prefix() -> None:
    # 2 clips x 2 frames, 4 tokens per frame merged to 3
    frame = MergePlan(dest=torch.tensor([[0, 1, 1, 2], [0, 0, 1, 2], [0, 1, 2, 2], [0, 1, 2, -1]]), num_out=3)
    plan = per_frame_plan(frame, batch=2, frames=2, num_prefix=1)
    assert plan.num_out == 7
    assert plan.dest.tolist() == [[0, 1, 2, 2, 3, 4, 4, 5, 6], [0, 1, 2, 3, 3, 4, 5, 6, -1]]


def test_pool_plan_partial_windows() -> None:
    plan, grid = pool_plan((2, 3, 3), kernel=2, temporal=1, num_prefix=1, device=torch.device("cpu"))
    assert grid == (2, 2, 2) and plan.num_out == 9
    frame0 = plan.dest[0, 1:10].reshape(3, 3).tolist()
    assert frame0 == [[1, 1, 2], [1, 1, 2], [3, 3, 4]]
    assert plan.dest[0, 10].item() == 5  # second frame starts after the first frame's 4 cells
    s = state_of(torch.randn(1, 19, 4), grid=(2, 3, 3))
    out = apply_plan(s, plan, grid=grid, frames=2)
    assert out.size[0].tolist() == [1, 4, 2, 2, 1, 4, 2, 2, 1]


@pytest.mark.parametrize("num_tokens,num_prefix,r", [(197, 1, 13), (12, 1, 3), (36, 0, 18), (9, 1, 2)])
def test_bipartite_merges_exactly_r_and_never_the_prefix(num_tokens: int, num_prefix: int, r: int) -> None:
    torch.manual_seed(0)
    metric = torch.randn(3, num_tokens, 8)
    plan = bipartite_soft_matching(metric, r, num_prefix)
    assert plan.num_out == num_tokens - r
    dest = plan.dest
    assert bool((dest >= 0).all())  # nothing dropped
    for b in range(3):
        counts = torch.bincount(dest[b], minlength=plan.num_out)
        assert int((counts - 1).sum()) == r  # exactly r tokens disappear
        assert dest[b, :num_prefix].tolist() == list(range(num_prefix))
        assert bool((counts[:num_prefix] == 1).all())  # no token joins a prefix token
        survivors = torch.ones(num_tokens, dtype=torch.bool)
        for slot in torch.nonzero(counts > 1).flatten().tolist():
            members = torch.nonzero(dest[b] == slot).flatten()
            # several A tokens (even index) may join one B token (odd index), never A with A or B with B
            assert int((members % 2 == 1).sum()) == 1 and int((members % 2 == 0).sum()) == len(members) - 1
            survivors[members[members % 2 == 0]] = False
        # the surviving tokens keep their order: slots 0, 1, 2, ... in sequence order
        assert dest[b, survivors].tolist() == list(range(plan.num_out))


def test_bipartite_merges_the_most_similar_pair() -> None:
    metric = torch.randn(1, 9, 16)
    metric[0, 4] = metric[0, 7] * 2.0  # same direction: cosine 1 (A token 4, B token 7)
    plan = bipartite_soft_matching(metric, 1, num_prefix=1)
    assert plan.dest[0, 4] == plan.dest[0, 7]


def test_bipartite_caps_r_at_half() -> None:
    plan = bipartite_soft_matching(torch.randn(2, 11, 4), 100, num_prefix=1)
    assert plan.num_out == 11 - 5
    assert bipartite_soft_matching(torch.randn(2, 11, 4), 0).num_out == 11
