"""`crucial_merge` (crucial-token merging, zero-gated fusion): fidelity, the plan, the fusion gate, options.

The invariants every reducer keeps run from tests/test_invariants.py (rows in tests/reducer_cases.py).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from reducer_helpers import clip, deit_s, sgd_losses, tiny
from videotok.flops import measure_cost
from videotok.reduce import AttnInfo, TokenState, build_reducer
from videotok.reduce.crucial_merge import crucial_merge_plan, parse_scales
from videotok.reduce.match import apply_plan


def test_deit_s_crucial_merge_fidelity() -> None:
    cost = measure_cost(deit_s("crucial_merge", keep_rate=0.7, layers="3,6,9"))
    assert 2.9 <= cost.gflops <= 3.3
    # ceil(0.7 n) crucial tokens stay, everything else is merged into them: 196 -> 138 -> 97 -> 68
    assert cost.tokens_per_block == [197] * 4 + [139] * 3 + [98] * 3 + [69] * 3


def test_crucial_merge_plan_merges_into_the_most_similar_crucial_token() -> None:
    # tokens: CLS, a, b, c, d; a and c are crucial; b looks like c, d looks like a
    keys = torch.tensor([[[0.0, 0, 1], [1, 0, 0], [0, 1, 0.1], [0, 1, 0], [1, 0.1, 0]]])
    importance = torch.tensor([[0.5, 0.4, 0.05, 0.3, 0.1]])
    plan = crucial_merge_plan(importance, keys, k=2, num_prefix=1)
    assert plan.dest.tolist() == [[0, 1, 2, 2, 1]] and plan.num_out == 3
    x = torch.arange(15, dtype=torch.float32).reshape(1, 5, 3)
    out = apply_plan(TokenState.from_grid(x, (1, 1, 4), num_prefix=1), plan)
    # d joins a, weighted by size x importance: (0.4 a + 0.1 d) / 0.5
    torch.testing.assert_close(out.x[0, 1], (0.4 * x[0, 1] + 0.1 * x[0, 4]) / 0.5)
    assert out.size[0].tolist() == [1.0, 2.0, 2.0]


def test_crucial_merge_uses_received_attention_without_cls() -> None:
    reducer = build_reducer("crucial_merge", keep_rate=0.5, layers="0", fusion=False)
    reducer.bind(tiny("vivit_tiny").reducer.spec)
    x = torch.randn(2, 8, 4)
    state = TokenState.from_grid(x, (1, 2, 4), num_prefix=0)
    request = reducer.request(0, state)
    assert request.received_attn and request.keys and not request.cls_attn
    info = AttnInfo(keys=torch.randn(2, 8, 4), received_attn=torch.rand(2, 8))
    out = reducer.reduce(state, info, 0)
    assert out.num_tokens == 4 and out.size.sum(1).tolist() == [8.0, 8.0]


def test_crucial_merge_with_zero_gate_and_keep_one_is_the_baseline() -> None:
    video = clip(2)
    with torch.no_grad():
        for backbone in ("timesformer_tiny", "vivit_tiny"):
            expected = tiny(backbone)(video)
            model = tiny(backbone, "crucial_merge", keep_rate=1.0)
            assert model.reducer.adds_parameters and float(model.reducer.fuser.gate.abs().sum()) == 0
            assert torch.equal(model(video), expected)


def test_crucial_merge_fusion_gate_trains_first() -> None:
    """A zero gate gets a gradient at once; the fusion's inner weights get theirs after one step."""
    model = tiny("vivit_tiny", "crucial_merge", keep_rate=0.7).train()
    fuser = model.reducer.fuser
    inner = [p for n, p in fuser.named_parameters() if n != "gate"]
    video, labels = clip(2), torch.tensor([0, 3])
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    nn.functional.cross_entropy(model(video), labels).backward()
    assert float(fuser.gate.grad.abs().sum()) > 0
    assert all(float(p.grad.abs().sum()) == 0 for p in inner)  # expected for a LayerScale-style gate
    optimiser.step()
    optimiser.zero_grad()
    nn.functional.cross_entropy(model(video), labels).backward()
    assert all(float(p.grad.abs().sum()) > 0 for p in inner)


def test_crucial_merge_fusion_changes_tokens_once_trained() -> None:
    model = tiny("timesformer_tiny", "crucial_merge", keep_rate=0.7, coarse_scales="2,2x3x3")
    state = model.embed(clip(1))
    with torch.no_grad():
        model.reducer.fuser.gate.fill_(1.0)
        fused = model.reducer.fuser(state)
    assert fused.num_tokens == state.num_tokens and fused.grid == state.grid
    assert torch.equal(fused.x[:, 0], state.x[:, 0])  # the CLS token is not a fine token
    assert not torch.allclose(fused.x[:, 1:], state.x[:, 1:])
    assert model.reducer.fuser.coarse_tokens(state).shape[1] == 8 * 9 + 4 * 4  # 2x2 per frame + 2 frames x 3x3


def test_crucial_merge_arguments() -> None:
    assert parse_scales("2") == ((1, 2),)
    assert parse_scales("2, 2x4x4") == ((1, 2), (2, 4))
    for bad in ("2x3", "1", "2x2x3", "a"):
        with pytest.raises(ValueError, match="coarse_scales"):
            parse_scales(bad)
    with pytest.raises(ValueError, match="one frame"):
        tiny("vivit_fe_tiny", "crucial_merge", coarse_scales="2x2x2")
    without = tiny("vivit_tiny", "crucial_merge", fusion=False)
    assert not without.reducer.adds_parameters and not list(without.reducer.parameters())


@pytest.mark.parametrize("args", [{"keep_rate": 0.6}])
def test_a_few_sgd_steps_reduce_the_loss(args: dict) -> None:
    losses = sgd_losses("crucial_merge", args)
    assert losses[-1] < 0.7 * losses[0], losses
