"""bf16 on CPU against float32: the logits agree within tolerance and the token bookkeeping stays
exact (sizes float32 and summing to the original token count, the log-size attention bias computed
from float32 sizes and cast to the attention's dtype only at the end).

Two bf16 modes, as Lightning names them: "bf16-mixed" (autocast: weights float32, matmuls in bf16;
the residual stream stays float32) and "bf16-true" (weights and tokens in bf16: the merges must
accumulate in float32 and cast back). Tolerance: 5% of the largest float32 logit; measured at most
2.1% (vivit_tiny + tome, bf16-true) on these random-init tiny models: bf16 keeps 8 mantissa
bits, and the reducers' discrete choices may differ between the two runs.
"""
from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch

import videotok.layers.attention as attention
from videotok.models import create_model
from videotok.reduce import build_reducer
from videotok.reduce.match import MergePlan, apply_plan
from videotok.reduce.state import TokenState

TOLERANCE = 0.05  # of max |float32 logit|; measured <= 0.021
CASES = [
    ("timesformer_tiny", "none", {}),
    ("timesformer_tiny", "tome", {"r": 20}),
    ("timesformer_tiny", "crucial_merge", {"keep_rate": 0.7}),
    ("timesformer_tiny", "semantic", {"layer": 2, "tokens": "2x2x2"}),
    ("timesformer_tiny", "cross_frame", {"r": 20, "layers": "0,2"}),
    ("vivit_tiny", "tome", {"r": 16}),
]
IDS = [f"{backbone}-{name}" for backbone, name, _ in CASES]
SIZE_WEIGHTED_ATTENTION = {"tome", "crucial_merge", "cross_frame"}  # semantic's attention is plain by default


pytestmark = pytest.mark.usefixtures("one_thread")


def _model(backbone: str, name: str, args: dict, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(backbone, num_classes=6, reducer=build_reducer(name, **args), **overrides).eval()


def _video() -> torch.Tensor:
    return torch.randn(2, 3, 8, 96, 96, generator=torch.Generator().manual_seed(1))


def _run(model: torch.nn.Module, video: torch.Tensor, mode: str) -> torch.Tensor:
    """Logits in `mode`: "float32", "bf16-mixed" (autocast) or "bf16-true" (a bf16 copy of the model)."""
    if mode == "bf16-true":
        model, video = model.to(torch.bfloat16), video.to(torch.bfloat16)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16-mixed" else nullcontext()
    with torch.no_grad(), context:
        return model(video)


@pytest.mark.parametrize("mode", ["bf16-mixed", "bf16-true"])
@pytest.mark.parametrize("backbone, name, args", CASES, ids=IDS)
def test_bf16_logits_match_float32(backbone: str, name: str, args: dict, mode: str):
    model, video = _model(backbone, name, args), _video()
    reference = _run(model, video, "float32")
    logits = _run(model, video, mode)
    assert logits.dtype == torch.bfloat16  # the run really was in bf16
    error = (logits.float() - reference).abs().max()
    assert error <= TOLERANCE * reference.abs().max(), (float(error), float(reference.abs().max()))


@pytest.mark.parametrize("mode", ["bf16-mixed", "bf16-true"])
@pytest.mark.parametrize("backbone, name, args", CASES, ids=IDS)
def test_bf16_keeps_sizes_and_the_size_bias_in_float32(backbone: str, name: str, args: dict, mode: str, monkeypatch):
    biases: list[tuple[torch.dtype, torch.dtype]] = []  # (sizes' dtype, the bias dtype asked for)

    def checked_size_bias(size, dtype, valid=None):
        bias = original(size, dtype, valid)
        if size is not None:
            assert size.dtype == torch.float32 and torch.equal(size, size.round())  # whole token counts
            assert bias.dtype == dtype
            expected = size.clamp_min(1e-6).log()
            if valid is not None:  # padding of divided attention's unequal frames
                expected = expected.masked_fill(~valid, float("-inf"))
            torch.testing.assert_close(bias, expected[:, None, None, :].to(dtype), rtol=0, atol=0)
            biases.append((size.dtype, dtype))
        return bias

    masks: list[tuple[torch.dtype, torch.dtype]] = []

    def recorded_attention(q, k, v, attn_mask=None, **kwargs):
        if attn_mask is not None:
            masks.append((q.dtype, attn_mask.dtype))
        return original_attention(q, k, v, attn_mask=attn_mask, **kwargs)

    original, original_attention = attention.size_bias, attention.F.scaled_dot_product_attention
    monkeypatch.setattr(attention, "size_bias", checked_size_bias)
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", recorded_attention)
    model, video = _model(backbone, name, args), _video()
    if mode == "bf16-true":
        model, video = model.to(torch.bfloat16), video.to(torch.bfloat16)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if mode == "bf16-mixed" else nullcontext()
    with torch.no_grad(), context:
        state = model.embed(video)
        original_tokens = state.num_tokens
        for i, block in enumerate(model.blocks):
            state = model.reducer.forward_block(block, state, i)
            assert state.size.dtype == torch.float32 and state.pos.dtype == torch.float32, i
            assert torch.equal(state.size.sum(1), torch.full((2,), float(original_tokens))), i
            assert torch.equal(state.size, state.size.round()), i
            if mode == "bf16-true":
                assert state.x.dtype == torch.bfloat16, i  # merged in float32, cast back
    assert state.num_tokens < original_tokens or name == "none"
    if name in SIZE_WEIGHTED_ATTENTION:
        # the attention's bias: float32 sizes, cast to the attention's bf16 at the very end (the
        # reducers' scores ask for float32 biases: CLS / received attention in float32)
        assert masks and set(masks) == {(torch.bfloat16, torch.bfloat16)}
        assert {size_dtype for size_dtype, _ in biases} == {torch.float32}


def test_a_bf16_merge_accumulates_in_float32():
    """999 tokens of 1 and one of 1000 merged into one: a bf16 running sum stalls at 256 (its
    spacing there is 2), so summing in bf16 would give about 1.25; float32 gives 1.999."""
    values = torch.ones(1, 1000, 1)
    values[0, -1] = 1000.0
    state = TokenState(x=values.to(torch.bfloat16), size=torch.ones(1, 1000), pos=torch.zeros(1, 1000, 3),
                       grid=None, num_prefix=0)
    merged = apply_plan(state, MergePlan(dest=torch.zeros(1, 1000, dtype=torch.long), num_out=1))
    assert merged.x.dtype == torch.bfloat16 and merged.size.dtype == torch.float32
    assert float(merged.size.sum()) == 1000.0
    assert float(merged.x) == float(torch.tensor(1.999).to(torch.bfloat16))


# vivit_fe without a reducer: with random weights, bf16 keys flip near-tied ToMe matches inside its
# per-frame encoder, and a different merge is a different (not a less precise) computation.
@pytest.mark.parametrize("name, reducer, args", [("timesformer_tiny", "tome", {"r": 4}), ("vivit_fe_tiny", "none", {})])
def test_bf16_true_with_average_pooling(name, reducer, args):
    """The size-weighted mean runs with float32 sizes; its result goes back to the tokens' dtype.
    Compared on the pooled features (the head's input): averaged features give near-zero logits
    at initialisation, where a relative logit tolerance would measure cancellation, not precision."""
    model = _model(name, reducer, args, global_pool="avg")
    features: list[torch.Tensor] = []
    model.head.register_forward_hook(lambda module, args, out: features.append(args[0]))
    _run(model, _video(), "float32")
    logits = _run(model, _video(), "bf16-true")
    reference, pooled = features[0], features[1]
    assert pooled.dtype == logits.dtype == torch.bfloat16
    error = (pooled.float() - reference).norm(dim=-1) / reference.norm(dim=-1)
    assert float(error.max()) <= TOLERANCE, error
