"""Schedules (videotok/reduce/schedule.py): which blocks reduce, and by how much."""
from __future__ import annotations

import pytest
import torch

from videotok.reduce.schedule import (capped_amounts, check_not_below_one, check_r_schedule, kept_after, largest_r,
                                     parse_layers, r_per_layer)


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


def test_capped_amounts_is_tomes_half_cap() -> None:
    # DeiT-S: 196 patches, r=16 in 12 blocks; the last block sees 20 and merges 10 (186 of 192 in all)
    runs = capped_amounts(196, [16] * 12)
    assert runs == [16] * 11 + [10] and sum(runs) == 186
    assert capped_amounts(196, [15] * 12) == [15] * 12
    assert capped_amounts(7, [5, 5]) == [3, 2]


def test_check_r_schedule_refuses_what_the_cap_would_lower() -> None:
    assert largest_r(196, 12, 0.0) == 15
    check_r_schedule("tome", 15, [15] * 12, 196, "in the sequence", 0.0, layers=range(12))
    with pytest.raises(ValueError, match=r"reducer 'tome': r=16 .*asks block 11 to remove 16 of the 20 patch tokens in "
                                         r"the sequence entering it, but at most half of them \(10\).*186 of the 192 .*"
                                         r"leaving 10 of the 196.*allowed: r in 0\.\.15 "):
        check_r_schedule("tome", 16, [16] * 12, 196, "in the sequence", 0.0, layers=range(12))
    # the block is named by its index when the schedule's blocks are given, by position otherwise
    with pytest.raises(ValueError, match=r"asks block 9 to remove 12 of the 12 patch tokens per frame"):
        check_r_schedule("tome", 12, [12] * 3, 36, "per frame", 0.0, layers=[3, 6, 9])
    with pytest.raises(ValueError, match=r"asks block 2 to remove 12 "):
        check_r_schedule("tome", 12, [12] * 3, 36, "per frame", 0.0)
    # every r up to the largest runs as asked (for each inflection), the next one does not
    for inflection in (-1.0, -0.5, 0.0, 0.5, 1.0):
        largest = largest_r(196, 12, inflection)
        for r in range(largest + 1):
            amounts = r_per_layer(r, 12, inflection)
            assert capped_amounts(196, amounts) == amounts
            check_r_schedule("tome", r, amounts, 196, "in the sequence", inflection)
        with pytest.raises(ValueError, match=rf"allowed: r in 0\.\.{largest} "):
            check_r_schedule("tome", largest + 1, r_per_layer(largest + 1, 12, inflection), 196, "", inflection)
