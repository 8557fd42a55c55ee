"""The peer strategies (`tome`, `evit`, `random`, `pool`): fidelity numbers, schedules and options.

The invariants shared by every reducer live in tests/test_invariants.py; this file checks what is
particular to each peer.
"""
from __future__ import annotations

import math

import pytest
import torch

from videotok.flops import measure_cost
from videotok.models import create_model
from videotok.reduce import AttnInfo, BackboneSpec, TokenState, build_reducer, parse_reducer_args
from videotok.reduce.evit import default_layers


def deit_s(reducer_name: str = "none", **args):
    """DeiT-S / ViT-S/16 at 224: a 1-frame, tubelet-1 joint-attention video ViT."""
    return create_model("vivit_small_patch16_224", num_frames=1, tubelet_size=1, num_classes=1000,
                        reducer=build_reducer(reducer_name, **args))


def tiny(backbone: str, name: str, **args):
    torch.manual_seed(0)
    return create_model(backbone, num_classes=6, reducer=build_reducer(name, **args)).eval()


def clip(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, 8, 96, 96, generator=torch.Generator().manual_seed(seed))


def tracked(model, video):
    state = model.embed(video)
    state = state.replace(source=torch.eye(state.num_tokens).expand(state.x.shape[0], -1, -1))
    for i, block in enumerate(model.blocks):
        state = model.reducer.forward_block(block, state, i)
    return state


# --- fidelity numbers (DESIGN.md) -------------------------------------------------------------------


def test_deit_s_tome_r13_fidelity() -> None:
    cost = measure_cost(deit_s("tome", r=13))
    assert cost.gflops == pytest.approx(2.71, rel=0.03)
    assert cost.tokens_per_block == [197 - 13 * i for i in range(13)]
    assert cost.tokens_per_block[-1] == 41


def test_deit_s_evit_fidelity() -> None:
    cost = measure_cost(deit_s("evit", keep_rate=0.7, layers="3,6,9"))
    assert cost.gflops == pytest.approx(3.0, rel=0.03)
    assert cost.tokens_per_block == [197] * 4 + [140] * 3 + [100] * 3 + [72] * 3


# --- tome -------------------------------------------------------------------------------------------


def test_tome_schedule_with_inflection() -> None:
    trace: list[int] = []
    tiny("vivit_tiny", "tome", r=6, inflection=0.5, layers="1,2,4")(clip(1), trace=trace)
    # r per layer 9, 6, 3 at blocks 1, 2, 4 (ToMe's schedule over the active blocks)
    assert trace == [145, 145, 136, 130, 130, 127, 127]


def test_tome_frame_scope_merges_inside_each_frame() -> None:
    model = tiny("timesformer_tiny", "tome", r=3, scope="frame")
    state = tracked(model, clip(2))
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


def test_reducer_args_from_cli_strings() -> None:
    args = parse_reducer_args(["r=13", "layers=3,6,9", "scope=frame", "inflection=0.5"])
    reducer = build_reducer("tome", **args)
    reducer.bind(BackboneSpec(12, 384, 6, (8, 14, 14), 1, "divided"))
    assert sorted(reducer.schedule) == [3, 6, 9]


# --- evit -------------------------------------------------------------------------------------------


def test_evit_keeps_top_k_and_fuses_the_rest_last() -> None:
    reducer = build_reducer("evit", keep_rate=0.5, layers="0")
    reducer.bind(BackboneSpec(1, 4, 1, (1, 2, 3), 1, "joint"))
    x = torch.randn(1, 7, 4)
    state = TokenState.from_grid(x, (1, 2, 3), num_prefix=1, track_source=True)
    state = state.replace(size=torch.tensor([[1.0, 1, 2, 1, 1, 1, 1]]))
    attn = torch.tensor([[0.3, 0.05, 0.1, 0.2, 0.05, 0.25, 0.05]])
    out = reducer.reduce(state, AttnInfo(cls_attn=attn), 0)
    # k = ceil(0.5 * 6) = 3 kept: tokens 3, 5 and 2 (in sequence order), the rest fused last
    assert out.num_tokens == 1 + 3 + 1
    torch.testing.assert_close(out.x[:, :4], x[:, [0, 2, 3, 5]])
    w = torch.tensor([0.05, 0.05, 0.05])  # tokens 1, 4, 6: attention x size (all size 1)
    torch.testing.assert_close(out.x[0, 4], (w[:, None] * x[0, [1, 4, 6]]).sum(0) / w.sum())
    assert out.size.tolist() == [[1.0, 2.0, 1.0, 1.0, 3.0]] and out.grid is None
    # at the next block the fused token competes like any other non-CLS token
    again = reducer.reduce(out, AttnInfo(cls_attn=torch.tensor([[0.2, 0.15, 0.1, 0.05, 0.5]])), 0)
    assert again.num_tokens == 1 + math.ceil(0.5 * 4) + 1
    torch.testing.assert_close(again.x[0, 2], out.x[0, 4])  # the old fused token kept (highest score)
    assert again.size.tolist() == [[1.0, 2.0, 3.0, 1.0 + 1.0]]  # new fused token: old tokens 2 and 3
    assert float(again.size.sum()) == float(state.size.sum()) == 8.0


def test_evit_in_timesformer_and_defaults() -> None:
    trace: list[int] = []
    tiny("timesformer_tiny", "evit", keep_rate=0.5, layers="2")(clip(1), trace=trace)
    assert trace == [289] * 3 + [1 + 144 + 1] * 4
    assert default_layers(12) == (3, 6, 9) and default_layers(6) == (1, 3, 4)
    with pytest.raises(ValueError, match="keep_rate"):
        build_reducer("evit", keep_rate=1.5)
    with pytest.raises(ValueError, match="CLS"):
        build_reducer("evit", keep_rate=0.5).bind(BackboneSpec(4, 8, 1, (1, 4, 4), 0, "joint"))


def test_evit_refuses_a_keep_rate_that_keeps_less_than_one_token() -> None:
    # timesformer_tiny at 96 px, 8 frames: 288 patches; blocks 1, 3, 4 by default
    with pytest.raises(ValueError, match=r"reducer 'evit'.*keep_rate=0.001 keeps 0.288 of the 288 patch tokens at "
                                         r"block 1; allowed: keep_rate in \[0\.1\d+, 1\]") as info:
        tiny("timesformer_tiny", "evit", keep_rate=0.001)
    smallest = float(str(info.value).split("keep_rate in [")[1].split(",")[0])
    trace: list[int] = []
    tiny("timesformer_tiny", "evit", keep_rate=smallest)(clip(1), trace=trace)  # the bound itself runs
    assert trace[-1] >= 1 + 1 + 1  # CLS, at least one kept token and the fused one
    with pytest.raises(ValueError, match="allowed: keep_rate in"):
        tiny("timesformer_tiny", "evit", keep_rate=smallest - 0.002)


def test_evit_without_fusion_drops() -> None:
    state = tracked(tiny("vivit_tiny", "evit", keep_rate=0.5, layers="1", fuse=False), clip(1))
    assert state.num_patches == 72 and float(state.size.sum()) == 1 + 72


# --- random -----------------------------------------------------------------------------------------


def test_random_is_reproducible_in_eval_and_follows_the_seed() -> None:
    video = clip(2)
    with torch.no_grad():
        a = tiny("vivit_tiny", "random", r=6, seed=0)(video)
        b = tiny("vivit_tiny", "random", r=6, seed=0)(video)
        c = tiny("vivit_tiny", "random", r=6, seed=1)(video)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not torch.allclose(a, c)


def test_random_draws_fresh_per_call_and_per_sample_in_training() -> None:
    model = tiny("vivit_tiny", "random", keep_rate=0.5, layers="0").train()
    video = clip(1).expand(2, -1, -1, -1, -1)  # the same clip twice
    with torch.no_grad():
        first, second = model(video), model(video)
    assert not torch.allclose(first[0], first[1])  # per-sample draws
    assert not torch.allclose(first, second)  # fresh draws per call


def test_random_matches_tome_token_counts_and_drop_mode() -> None:
    # r = 5 is the most tome accepts on vivit_fe_tiny's 36 patches per frame over 6 blocks
    for backbone, r in (("timesformer_tiny", 20), ("vivit_fe_tiny", 5)):
        t_tome: list[int] = []
        t_rand: list[int] = []
        tiny(backbone, "tome", r=r)(clip(1), trace=t_tome)
        tiny(backbone, "random", r=r)(clip(1), trace=t_rand)
        assert t_tome == t_rand
    with pytest.raises(ValueError, match=r"reducer 'random'.*r=100 at 6 blocks.*allowed: r in 0\.\.5"):
        tiny("vivit_fe_tiny", "random", r=100)  # the same limit as tome
    state = tracked(tiny("vivit_tiny", "random", keep_rate=0.5, layers="2", mode="drop"), clip(1))
    assert state.num_patches == 72 and float(state.size.sum()) == 1 + 72 and bool((state.size == 1).all())
    with pytest.raises(ValueError, match="either r"):
        build_reducer("random", r=2, keep_rate=0.5)
    with pytest.raises(ValueError, match="mode='discard'"):
        build_reducer("random", r=2, mode="discard")


# --- pool -------------------------------------------------------------------------------------------


def test_pool_keeps_a_grid_and_divided_attention() -> None:
    model = tiny("timesformer_tiny", "pool", layers="1,3")
    ran: set[int] = set()
    for i, block in enumerate(model.blocks):
        block.temporal_attn.register_forward_hook(lambda *_, i=i: ran.add(i))
    state = tracked(model, clip(1))
    assert ran == set(range(6))  # divided attention in every block: the grid survives pooling
    assert state.grid == (8, 2, 2) and state.frames == 8  # 6x6 -> 3x3 -> 2x2 (partial windows)
    assert state.size[0, 1:5].tolist() == [16.0, 8.0, 8.0, 4.0]


def test_pool_temporal_and_bind_checks() -> None:
    state = tracked(tiny("timesformer_tiny", "pool", layers="0", temporal=2, kernel=3), clip(1))
    assert state.grid == (4, 2, 2) and bool((state.size[:, 1:] == 18).all())
    assert build_reducer("pool").bind(BackboneSpec(12, 8, 1, (8, 14, 14), 1, "divided")) is None
    with pytest.raises(ValueError, match="changes nothing"):
        tiny("vivit_tiny", "pool", layers="0,1,2,3")  # 6x6 -> 3x3 -> 2x2 -> 1x1 -> 1x1
    with pytest.raises(ValueError, match="temporal=2 needs several frames"):
        tiny("vivit_fe_tiny", "pool", temporal=2)
    with pytest.raises(ValueError, match="kernel=0"):
        build_reducer("pool", kernel=0)
