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


def tome_parse_r(num_layers: int, r: int, inflect: float) -> list[int]:
    """ToMe's own formula (facebookresearch/ToMe, tome/utils.py `parse_r` with r=(r, inflect)), restated."""
    low = int(r * (1.0 - inflect))
    step = (2 * r - low - low) / (num_layers - 1)
    return [int(low + step * i) for i in range(num_layers)]


def test_r_per_layer() -> None:
    assert r_per_layer(13, 12) == [13] * 12
    front = r_per_layer(8, 5, inflection=-0.5)  # ToMe's sign: negative decreases
    assert front == [12, 10, 8, 6, 4]
    assert r_per_layer(8, 5, inflection=0.5) == front[::-1]
    assert r_per_layer(13, 1, inflection=-1) == [13] and r_per_layer(13, 0) == []
    with pytest.raises(ValueError, match="inflection"):
        r_per_layer(8, 5, inflection=2.0)


def test_r_per_layer_is_tomes_schedule() -> None:
    decreasing, increasing = r_per_layer(13, 12, inflection=-1.0), r_per_layer(13, 12, inflection=1.0)
    assert sum(decreasing) == sum(increasing) == 151  # int() truncation: not 13 * 12 = 156
    assert decreasing == [26, 23, 21, 18, 16, 14, 11, 9, 7, 4, 2, 0] == tome_parse_r(12, 13, -1.0)
    assert increasing == [0, 2, 4, 7, 9, 11, 14, 16, 18, 21, 23, 26] == tome_parse_r(12, 13, 1.0)
    assert all(a >= b for a, b in zip(decreasing, decreasing[1:]))  # -1: the paper's decreasing schedule
    for r in (1, 7, 13, 16):
        for layers in (2, 3, 6, 12):
            for inflection in (-1.0, -0.7, -0.5, -0.25, 0.0, 0.3, 0.5, 1.0):
                assert r_per_layer(r, layers, inflection) == tome_parse_r(layers, r, inflection)


def test_kept_after_and_floor() -> None:
    assert kept_after(196, 0.7) == 138 and kept_after(139, 0.7) == 98 and kept_after(99, 0.7) == 70
    assert kept_after(1, 0.01) == 1
    with pytest.raises(ValueError, match="keep_rate"):
        kept_after(10, 0.0)
    with pytest.raises(ValueError, match="reduce less"):
        check_not_below_one("x", 0, "after block 3")
