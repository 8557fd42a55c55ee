"""Schedules (videotok/reduce/schedule.py): which blocks reduce, and by how much."""
from __future__ import annotations

import pytest
import torch

from videotok.reduce.schedule import check_not_below_one, kept_after, parse_layers, r_per_layer


def test_parse_layers() -> None:
    assert parse_layers(None, 4) == (0, 1, 2, 3) and parse_layers("all", 3) == (0, 1, 2)
    assert parse_layers("9, 3,6", 12) == (3, 6, 9) and parse_layers([1], 2) == (1,) and parse_layers(2, 4) == (2,)
    with pytest.raises(ValueError, match="outside 0..11"):
        parse_layers("3,12", 12)
    with pytest.raises(ValueError, match="comma-separated"):
        parse_layers("a,b", 12)
    with pytest.raises(ValueError, match="twice"):
        parse_layers("3,3", 12)


def test_r_per_layer() -> None:
    assert r_per_layer(13, 12) == [13] * 12
    front = r_per_layer(8, 5, inflection=0.5)
    assert front[0] == 12 and front[-1] == 4 and sum(front) == 40
    assert r_per_layer(8, 5, inflection=-0.5)[::-1] == front
    with pytest.raises(ValueError, match="inflection"):
        r_per_layer(8, 5, inflection=2.0)


def test_kept_after_and_floor() -> None:
    assert kept_after(196, 0.7) == 138 and kept_after(139, 0.7) == 98 and kept_after(99, 0.7) == 70
    assert kept_after(1, 0.01) == 1
    with pytest.raises(ValueError, match="keep_rate"):
        kept_after(10, 0.0)
    with pytest.raises(ValueError, match="reduce less"):
        check_not_below_one("x", 0, "after block 3")
