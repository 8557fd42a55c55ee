"""`vid_tldr` (saliency-weighted merging): the authors' outputs, saliency, schedules, CLS handling.

The invariants every reducer keeps run from tests/test_invariants.py (rows in tests/reducer_cases.py).
tests/fixtures/vid_tldr_reference.npz holds the authors' merge results on chained random inputs
(made by benchmarks/vid_tldr_reference.py from their code; the inputs are regenerated here).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reducer_helpers import clip, tiny, tracked
from videotok.layers.attention import Attention
from videotok.reduce import build_reducer
from videotok.reduce.vid_tldr import saliency

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import vid_tldr_reference as reference  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "vid_tldr_reference.npz"


@pytest.mark.parametrize("label", list(reference.CHAIN_SCHEDULES))
@pytest.mark.parametrize("seed", [0, 1])
def test_merge_chain_matches_the_authors_fixture(seed: int, label: str) -> None:
    fixture = np.load(FIXTURE)
    schedule = reference.CHAIN_SCHEDULES[label]
    x, maps = reference.chain_inputs(seed, schedule)
    sums = np.array([float(x.sum())] + [float(m.sum()) for m in maps])
    if not np.allclose(sums, fixture[f"input_sum/{seed}/{label}"], rtol=1e-6):
        pytest.skip("torch's generator drew other inputs than the fixture's")
    tokens, mass = reference.our_chain(x, maps, schedule)[-1]
    np.testing.assert_allclose(tokens.numpy(), fixture[f"x/{seed}/{label}"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(mass.numpy(), fixture[f"size/{seed}/{label}"], atol=1e-5, rtol=0)


def test_saliency_background_zero_foreground_sharpened() -> None:
    s = saliency(torch.tensor([[-4.0, -3.0, -2.0, -1.0, 0.0]]))  # min-max: 0, .25, .5, .75, 1; mean .5
    torch.testing.assert_close(s, torch.tensor([[0.0, 0.0, 0.0, 0.5, 1.0]]))


def test_sharpness_is_the_head_averaged_row_entropy() -> None:
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4)
    q, k = torch.randn(2, 2, 4, 7, 8).unbind(0)
    rows = ((q * attn.scale) @ k.transpose(-2, -1)).softmax(-1).mean(1)  # [B, N, N]
    torch.testing.assert_close(attn.sharpness(q, k), (rows * rows.log()).sum(-1))
    valid = torch.tensor([[True] * 6 + [False]] * 2)  # [B, N]
    masked = attn.sharpness(q, k, valid)  # padding keys out of every row
    rows = ((q * attn.scale) @ k.transpose(-2, -1))[..., :6].softmax(-1).mean(1)
    torch.testing.assert_close(masked, (rows * rows.log()).sum(-1))


@pytest.mark.parametrize("backbone", ["vivit_tiny", "timesformer_tiny", "videomae_tiny"])
def test_schedule_list_and_cls(backbone: str) -> None:
    model = tiny(backbone, "vid_tldr", r="12,6,3")
    start, end = tracked(model, clip(2))
    n0 = start.num_tokens
    assert end.num_tokens == n0 - 21
    if model.num_prefix:
        torch.testing.assert_close(end.source[:, 0], torch.eye(n0)[0].expand(2, -1))  # CLS alone in slot 0
    # mass: what the merged tokens weigh after saliency (background merged at 0); size: patches covered
    assert end.mass is not None and bool((end.mass <= end.size + 1e-5).all())
    assert bool((end.mass >= 1 - 1e-5).all())
    torch.testing.assert_close(end.size.sum(1), torch.full((2,), float(n0)))
    trace: list[int] = []
    with torch.no_grad():
        model(clip(1), trace=trace)
    assert trace[:4] == [n0, n0 - 12, n0 - 18, n0 - 21]


def test_background_tokens_leave_no_trace_in_features() -> None:
    """A background token (saliency 0) merged into a partner adds its patches to the partner's size but
    nothing to its mass (nor, by the weighted average, to its features)."""
    model = tiny("videomae_tiny", "vid_tldr", r=40, layers="0")
    start, end = tracked(model, clip(1))
    merged_whole = end.size > end.mass + 0.5  # some partner absorbed a background token
    assert bool(merged_whole.any())


def test_arguments() -> None:
    assert build_reducer("vid_tldr", r=[8, 4]).r == [8, 4]
    assert build_reducer("vid_tldr", r="8").r == [8]
    with pytest.raises(ValueError, match="one value with `layers`"):
        build_reducer("vid_tldr", r="8,4", layers="0,1")
    with pytest.raises(ValueError, match="r has 7 values"):
        tiny("vivit_tiny", "vid_tldr", r="1,1,1,1,1,1,1")
    with pytest.raises(ValueError, match="allowed: r in"):
        tiny("vivit_tiny", "vid_tldr", r="100")


def test_bf16_mixed_matches_float32() -> None:
    model = tiny("vivit_tiny", "vid_tldr", r="30,15")
    video = clip(2)
    with torch.no_grad():
        full = model(video)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(video).float()
    assert float((half - full).abs().max()) <= 0.05 * float(full.abs().max())
