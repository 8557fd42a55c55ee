"""`random` (the naive baseline): reproducibility, fresh draws in training, token counts, drop mode.

The invariants every reducer keeps run from tests/test_invariants.py (rows in tests/reducer_cases.py).
"""
from __future__ import annotations

import pytest
import torch

from reducer_helpers import clip, tiny, tracked
from videotok.reduce import build_reducer


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
    with pytest.raises(ValueError, match=r"reducer 'random': r=100 .*asks block 0 to remove 100 of the 36 .*"
                                         r"allowed: r in 0\.\.5"):
        tiny("vivit_fe_tiny", "random", r=100)  # the same limit as tome
    with pytest.raises(ValueError, match=r"reducer 'random': r=10 .*asks block 2 to remove 10 of the 16 patch "
                                         r"tokens per frame.*allowed: r in 0\.\.9"):
        tiny("timesformer_tiny", "random", r=10, scope="frame", layers="0,1,2")  # tome's cap would give 8
    _, state = tracked(tiny("vivit_tiny", "random", keep_rate=0.5, layers="2", mode="drop"), clip(1))
    assert state.num_patches == 72 and float(state.size.sum()) == 1 + 72 and bool((state.size == 1).all())
    with pytest.raises(ValueError, match="either r"):
        build_reducer("random", r=2, keep_rate=0.5)
    with pytest.raises(ValueError, match="mode='discard'"):
        build_reducer("random", r=2, mode="discard")
