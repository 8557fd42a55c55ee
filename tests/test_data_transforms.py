"""Train and eval transforms: shapes, crop positions, normalisation."""

from __future__ import annotations

import pytest
import torch

from videotok.data.transforms import denormalize, eval_clip_transform, eval_view_transform, train_transform

MEAN, STD = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)


def _rows(height: int, width: int) -> torch.Tensor:
    """[C, T, H, W] whose value is the row index (for portrait) or column (landscape)."""
    rows = torch.arange(height, dtype=torch.float32).view(1, 1, height, 1).expand(3, 2, height, width)
    return rows.clone()


@pytest.mark.parametrize("num_crops,expected_first_rows", [(1, [18]), (3, [0, 18, 36])])
def test_eval_crops_along_long_side(num_crops, expected_first_rows):
    view = eval_view_transform(64, num_crops, (0, 0, 0), (1 / 255, 1 / 255, 1 / 255))  # identity norm
    firsts = []
    for crop in range(num_crops):
        out = view({"video": _rows(100, 64), "crop_index": crop})["video"]
        assert out.shape == (3, 2, 64, 64)
        firsts.append(int(out[0, 0, 0, 0]))
    assert firsts == expected_first_rows  # top, centre, bottom of a portrait clip


def test_eval_clip_transform_scales_short_side():
    out = eval_clip_transform(4, 32)({"video": torch.rand(3, 10, 48, 96) * 255})["video"]
    assert out.shape == (3, 4, 32, 64)


def test_normalise_and_back():
    video = torch.rand(3, 2, 64, 64) * 255
    view = eval_view_transform(64, 1, MEAN, STD)({"video": video.clone(), "crop_index": 0})["video"]
    expected = (video / 255 - torch.tensor(MEAN).view(3, 1, 1, 1)) / torch.tensor(STD).view(3, 1, 1, 1)
    assert torch.allclose(view, expected, atol=1e-5)
    assert torch.allclose(denormalize(view, MEAN, STD), video, atol=1e-3)


def test_train_transform_shape_and_flip():
    torch.manual_seed(0)
    t = train_transform(8, (64, 80), 56, MEAN, STD, horizontal_flip=True)
    out = t({"video": torch.rand(3, 16, 72, 128) * 255})["video"]
    assert out.shape == (3, 8, 56, 56)
    # no flip, no scale jitter: a column ramp stays increasing left to right
    ramp = torch.arange(128, dtype=torch.float32).expand(3, 8, 64, 128).clone()
    same = train_transform(8, (64, 64), 64, (0, 0, 0), (1 / 255,) * 3, horizontal_flip=False)
    cols = same({"video": ramp})["video"][0, 0, 0]
    assert (cols[1:] >= cols[:-1]).all()
