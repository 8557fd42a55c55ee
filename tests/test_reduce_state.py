"""TokenState (videotok/reduce/state.py): the start state's layout and its checks."""
from __future__ import annotations

import pytest
import torch

from videotok.reduce.state import TokenState


def test_from_grid_layout() -> None:
    x = torch.randn(2, 1 + 2 * 2 * 3, 4)
    s = TokenState.from_grid(x, (2, 2, 3), num_prefix=1, track_source=True)
    assert s.size.shape == (2, 13) and bool((s.size == 1).all())
    assert s.frames == 2 and s.grid == (2, 2, 3) and not s.merged
    assert s.pos[0, 1].tolist() == [0, 0, 0] and s.pos[0, 4].tolist() == [0, 1, 0]  # t-major, w fastest
    assert s.pos[0, 7].tolist() == [1, 0, 0]
    assert s.pos[0, 0].tolist() == pytest.approx([0.5, 0.5, 1.0])  # prefix sits at the centre
    torch.testing.assert_close(s.source[1], torch.eye(13))
    assert s.num_patches == 12


def test_from_grid_rejects_a_wrong_token_count() -> None:
    with pytest.raises(ValueError, match="do not match"):
        TokenState.from_grid(torch.randn(1, 12, 4), (2, 2, 3), num_prefix=1)
