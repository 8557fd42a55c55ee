"""`evit` (keep the top-k by CLS attention, or by attention received without a CLS token, fuse the
rest): fidelity number, defaults and options.

The invariants every reducer keeps run from tests/test_invariants.py (rows in tests/reducer_cases.py).
"""
from __future__ import annotations

import math

import pytest
import torch

from reducer_helpers import clip, deit_s, tiny, tracked
from videotok.flops import measure_cost
from videotok.reduce import AttnInfo, BackboneSpec, TokenState, build_reducer
from videotok.reduce.evit import default_layers


def test_deit_s_evit_fidelity() -> None:
    cost = measure_cost(deit_s("evit", keep_rate=0.7, layers="3,6,9"))
    assert cost.gflops == pytest.approx(3.0, rel=0.03)
    assert cost.tokens_per_block == [197] * 4 + [140] * 3 + [100] * 3 + [72] * 3


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


def test_evit_ranks_by_received_attention_without_cls() -> None:
    """No CLS token (VideoMAE): the attention each token receives ranks the tokens and weights the fused one."""
    reducer = build_reducer("evit", keep_rate=0.5, layers="0")
    reducer.bind(BackboneSpec(1, 4, 1, (1, 2, 3), 0, "joint"))
    x = torch.randn(1, 6, 4)
    state = TokenState.from_grid(x, (1, 2, 3), num_prefix=0)
    request = reducer.request(0, state)
    assert request.received_attn and not request.cls_attn
    received = torch.tensor([[0.05, 0.1, 0.2, 0.05, 0.25, 0.35]])
    out = reducer.reduce(state, AttnInfo(received_attn=received), 0)
    # k = 3 kept: tokens 2, 4, 5 in order; tokens 0, 1, 3 fused last, weighted by what they receive
    torch.testing.assert_close(out.x[:, :3], x[:, [2, 4, 5]])
    w = torch.tensor([0.05, 0.1, 0.05])
    torch.testing.assert_close(out.x[0, 3], (w[:, None] * x[0, [0, 1, 3]]).sum(0) / w.sum())
    assert out.num_prefix == 0 and out.size.tolist() == [[1.0, 1.0, 1.0, 3.0]]
    trace: list[int] = []
    tiny("videomae_tiny", "evit", keep_rate=0.5, layers="2")(clip(1), trace=trace)
    assert trace == [144] * 3 + [72 + 1] * 4  # 4 x 6 x 6 tubelets, no CLS; 72 kept and the fused one


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
    _, state = tracked(tiny("vivit_tiny", "evit", keep_rate=0.5, layers="1", fuse=False), clip(1))
    assert state.num_patches == 72 and float(state.size.sum()) == 1 + 72
