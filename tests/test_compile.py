"""torch.compile: every reducer with a fixed schedule traces as one graph (no host sync, no graph
break), on TimeSformer's placed divided attention too, and the static layout it then uses (every
frame padded to the most tokens a frame can hold) gives the exact layout's result."""
from __future__ import annotations

import pytest
import torch
import torch._dynamo

from reducer_helpers import tiny
from videotok.layers import block as block_module

FIXED_SCHEDULES = [
    ("none", {}),
    ("tome", {"r": 4}),
    ("tome", {"r": 1, "scope": "tube"}),
    ("evit", {"keep_rate": 0.7, "layers": "1,3"}),
    ("crucial_merge", {"keep_rate": 0.7, "layers": "1,3"}),
    ("cross_frame", {"r": 8}),
    ("cross_frame", {"mode": "frames", "r": 1, "layers": "1,2"}),
    ("pool", {"layers": "2"}),
    ("semantic", {"layer": 2}),
    ("vid_tldr", {"r": "24,12"}),
]


def _video(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 8, 96, 96, generator=torch.Generator().manual_seed(0))


# CI time: divided attention (placement) is the path that could break a graph; joint attention in -m slow
@pytest.mark.parametrize("model_name", ["timesformer_tiny", pytest.param("vivit_tiny", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name,args", FIXED_SCHEDULES, ids=[f"{n}-{'-'.join(map(str, a.values()))}" for n, a in FIXED_SCHEDULES])
def test_fixed_schedules_trace_as_one_graph(model_name: str, name: str, args: dict) -> None:
    model = tiny(model_name, name, **args)
    torch._dynamo.reset()
    with torch.inference_mode():
        explained = torch._dynamo.explain(model)(_video())
    reasons = sorted({str(b.reason).splitlines()[0] for b in explained.break_reasons})
    assert explained.graph_break_count == 0, reasons
    assert explained.graph_count == 1


@pytest.mark.parametrize("name,args", [("tome", {"r": 4}), ("evit", {"keep_rate": 0.7, "layers": "1,3", "fuse": False}),
                                       ("cross_frame", {"r": 8}), ("vid_tldr", {"r": "24,12"})])
def test_static_layout_gives_the_exact_layouts_logits(monkeypatch, name: str, args: dict) -> None:
    """What a compiled forward runs (block.layout with static=True: min(n, H*W) seats per frame,
    masks always on), run eagerly, against the exact width."""
    model = tiny("timesformer_tiny", name, **args)
    for block in model.blocks:  # TimeSformer zero-initialises temporal_fc; give the branch weight
        torch.nn.init.normal_(block.temporal_fc.weight, std=0.05)
    video = _video()
    with torch.no_grad():
        exact = model(video)
        original = block_module.layout
        monkeypatch.setattr(block_module, "layout", lambda *a, **k: original(*a, **{**k, "static": True}))
        static = model(video)
    torch.testing.assert_close(static, exact, atol=2e-6, rtol=1e-5)


@pytest.mark.slow
def test_compiled_merging_model_matches_eager() -> None:
    """A real torch.compile (inductor, about 1.5 min on 2 cores) of a merging TimeSformer."""
    model = tiny("timesformer_tiny", "tome", r=4)
    video = _video()
    with torch.inference_mode():
        torch.testing.assert_close(torch.compile(model)(video), model(video), atol=1e-5, rtol=1e-4)
