"""Evaluation: multi-view aggregation, deduplication, video accounting, end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from videotok.data import KineticsDataModule
from videotok.evaluate import (
    EvaluationResult,
    VideoList,
    ViewAccumulator,
    default_views,
    evaluate,
    parse_views,
)
from videotok.models import create_model


def _accumulate(rows: list[tuple[int, int, int, list[float]]], num_classes: int) -> ViewAccumulator:
    """rows: (video_index, view_index, label, logits)."""
    acc = ViewAccumulator(num_classes)
    acc.update(
        torch.tensor([r[3] for r in rows]),
        torch.tensor([r[2] for r in rows]),
        torch.tensor([r[0] for r in rows]),
        torch.tensor([r[1] for r in rows]),
    )
    return acc


# Video 0 (label 0): two views confidently wrong (class 1), one right with a huge logit.
# Softmax saturates, so the two wrong views outvote it; mean logits let the huge one win.
WRONG_WRONG_HUGE = [
    (0, 0, 0, [0.0, 5.0, 0.0]),
    (0, 1, 0, [0.0, 5.0, 0.0]),
    (0, 2, 0, [20.0, 0.0, 0.0]),
]


# -- aggregation -----------------------------------------------------------------------------
def test_aggregation_changes_the_answer():
    acc = _accumulate(WRONG_WRONG_HUGE, num_classes=3)
    by_softmax = acc.compute("softmax")
    by_logits = acc.compute("logits")
    assert by_softmax.clip_top1 == pytest.approx(100 / 3)  # one view in three is right
    assert by_softmax.video_top1 == 0.0  # mean softmax: class 1 (0.66) beats class 0 (0.34)
    assert by_logits.video_top1 == 100.0  # mean logits: class 0 (6.67) beats class 1 (3.33)
    assert by_logits.clip_top1 == by_softmax.clip_top1  # clip level ignores aggregation
    assert by_softmax.topk == 3 and by_softmax.clip_top5 == 100.0  # 3 classes: top-3 always hits


def test_video_level_beats_clip_level_and_per_class():
    # Video 0 (label 0): views right, right, wrong -> video right, clips 2/3.
    # Video 1 (label 1): views wrong, wrong, wrong -> video wrong, clips 0/3.
    # Video 2 (label 1): right, right, right.
    rows = [
        (0, 0, 0, [3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        (0, 1, 0, [2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        (0, 2, 0, [0.5, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        (1, 0, 1, [0.0, -2.0, 6.0, 5.0, 4.0, 3.0, -1.0]),  # label 1 ranked 7th: top-5 miss
        (1, 1, 1, [0.0, -0.5, 6.0, 5.0, 4.0, 3.0, -1.0]),  # ranked 6th
        (1, 2, 1, [0.0, 2.5, 6.0, 5.0, 4.0, 3.0, -1.0]),  # ranked 5th: top-5 hit
        (2, 0, 1, [0.0, 9.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        (2, 1, 1, [0.0, 9.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        (2, 2, 1, [0.0, 9.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
    ]
    m = _accumulate(rows, num_classes=7).compute("softmax")
    assert m.topk == 5
    assert m.clip_top1 == pytest.approx(100 * 5 / 9)
    assert m.clip_top5 == pytest.approx(100 * 7 / 9)
    assert m.video_top1 == pytest.approx(100 * 2 / 3)
    assert m.num_views == 9 and m.num_videos == 3 and m.duplicates == 0
    assert m.per_class_videos == [1, 2, 0, 0, 0, 0, 0]
    assert m.per_class_top1[:3] == [100.0, 50.0, None]
    assert m.views_per_video == {0: 3, 1: 3, 2: 3}


def test_duplicate_views_are_dropped_and_counted():
    once = _accumulate(WRONG_WRONG_HUGE, num_classes=3).compute("logits")
    # The first view again (as DDP padding repeats a sample), then the whole video again.
    twice = _accumulate(WRONG_WRONG_HUGE[:1] + WRONG_WRONG_HUGE + WRONG_WRONG_HUGE, num_classes=3)
    metrics = twice.compute("logits")
    assert metrics.duplicates == 4
    assert metrics.num_views == 3 and metrics.views_per_video == {0: 3}
    assert metrics.clip_top1 == once.clip_top1 and metrics.video_top1 == once.video_top1


def test_views_of_one_video_must_share_a_label():
    with pytest.raises(ValueError, match="video_index 0"):
        _accumulate([(0, 0, 0, [1.0, 0.0]), (0, 1, 1, [1.0, 0.0])], num_classes=2).compute()


# -- views and the video list --------------------------------------------------------------------
def test_default_and_parsed_views():
    assert default_views("timesformer_base_patch16_224") == (1, 3)
    assert default_views("vivit_tiny") == (4, 3) and default_views("vivit_fe_small_patch16_224") == (4, 3)
    assert default_views("videomae_base_patch16_224") == (5, 3)
    assert parse_views("2x3") == (2, 3) and parse_views(" 4X1 ") == (4, 1)
    for bad in ("3", "2x2", "0x3", "axb"):
        with pytest.raises(ValueError, match="--views"):
            parse_views(bad)


def test_video_list_hash_and_accounting(tmp_path: Path):
    rows = [(str(tmp_path / "a.mp4"), {"label": 0}), (str(tmp_path / "sub/b.mp4"), {"label": 1}),
            (str(tmp_path / "c.mp4"), {"label": 1}), (str(tmp_path / "d.mp4"), {"label": 0})]
    listing = VideoList.from_labeled_paths(rows, tmp_path)
    assert listing.entries[1] == ("sub/b.mp4", 1)
    moved = VideoList.from_labeled_paths([(p.replace(str(tmp_path), "/elsewhere"), m) for p, m in rows],
                                         "/elsewhere")
    assert moved.sha256 == listing.sha256 and listing.short_hash == listing.sha256[:12]
    assert VideoList.from_labeled_paths(rows[::-1], tmp_path).sha256 == listing.sha256  # order-free
    assert VideoList.from_labeled_paths(rows[:3], tmp_path).sha256 != listing.sha256

    # a.mp4 whole, sub/b.mp4 unreadable, c.mp4 with 2 of 3 views, d.mp4 lost without a word
    accounting = listing.account({0: 3, 2: 2}, [(rows[1][0], "truncated")], expected_views=3)
    assert accounting.videos_expected == 4 and accounting.videos_evaluated == 2
    assert [(u.path, u.reason) for u in accounting.unreadable] == [("sub/b.mp4", "truncated")]
    assert [(v.path, v.views, v.expected) for v in accounting.incomplete] == [("c.mp4", 2, 3)]
    assert accounting.unaccounted == ["d.mp4"]


# -- end to end ----------------------------------------------------------------------------------
def _tiny_model(num_classes: int, crop: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("timesformer_tiny", num_classes=num_classes, img_size=crop, depth=2)


def test_evaluate_end_to_end_2x3(synthetic_data_dir: Path, synthetic_datamodule_kwargs: dict):
    kwargs = {**synthetic_datamodule_kwargs, "test_views": (1, 1)}
    dm = KineticsDataModule(str(synthetic_data_dir), **kwargs)
    model = _tiny_model(dm.num_classes, kwargs["crop_size"]).train()
    result = evaluate(model, dm, split="test", views=(2, 3), progress=False, extra={"ckpt_path": "x.ckpt"})

    num_videos = len(dm.videos("test"))
    assert result.videos_expected == result.videos_evaluated == num_videos == 12
    assert result.views_evaluated == num_videos * 2 * 3 and result.views == (2, 3)
    assert result.unreadable == [] and result.incomplete == [] and result.unaccounted == []
    assert result.duplicate_views == 0 and result.topk == 5
    assert result.gflops_per_view > 0 and result.params_m > 0 and result.clips_per_second > 0
    assert [c.name for c in result.per_class] == dm.classes
    assert sum(c.videos for c in result.per_class) == num_videos
    assert result.video_list_hash == VideoList.from_labeled_paths(dm.videos("test"), dm.data_dir).short_hash
    assert model.training and dm.test_views == (1, 1)  # both left as they were

    data = json.loads(result.to_json())
    for key in ("clip_top1", "clip_top5", "video_top1", "video_top5", "gflops_per_view",
                "clips_per_second", "video_list_sha256", "per_class", "unreadable"):
        assert key in data
    assert data["extra"] == {"ckpt_path": "x.ckpt"}
    assert EvaluationResult.from_json(result.to_json()) == result
    table = result.to_table(per_class=True)
    assert "clip top-1" in table and "video top-1 (softmax)" in table and "12 / 12" in table
    assert dm.classes[0] in table


def test_corrupt_video_in_the_list_is_reported(
    tmp_path: Path, synthetic_data_dir: Path, synthetic_datamodule_kwargs: dict, broken_videos: dict
):
    data_dir = tmp_path / "data"
    shutil.copytree(synthetic_data_dir / "test", data_dir / "test")
    shutil.copyfile(synthetic_data_dir / "classes.txt", data_dir / "classes.txt")
    (data_dir / "broken").mkdir()
    shutil.copyfile(broken_videos["truncated"], data_dir / "broken" / "truncated.mp4")
    lines = (synthetic_data_dir / "test.csv").read_text().splitlines()[:5]
    lines.insert(2, "broken/truncated.mp4 1")
    (data_dir / "test.csv").write_text("\n".join(lines) + "\n")

    dm = KineticsDataModule(str(data_dir), **synthetic_datamodule_kwargs)
    model = _tiny_model(dm.num_classes, synthetic_datamodule_kwargs["crop_size"])
    result = evaluate(model, dm, views=(2, 3), progress=False)

    assert result.videos_expected == 6 and result.videos_evaluated == 5
    assert result.views_evaluated == 5 * 6
    assert [u.path for u in result.unreadable] == ["broken/truncated.mp4"]
    assert result.unreadable[0].reason
    assert result.unaccounted == [] and result.incomplete == []
    assert "broken/truncated.mp4" in result.to_table() and "5 / 6" in result.to_table()
    assert json.loads(result.to_json())["unreadable"][0]["path"] == "broken/truncated.mp4"


def test_model_and_data_must_match(synthetic_data_dir: Path, synthetic_datamodule_kwargs: dict):
    dm = KineticsDataModule(str(synthetic_data_dir), **synthetic_datamodule_kwargs)
    model = _tiny_model(dm.num_classes + 1, synthetic_datamodule_kwargs["crop_size"])
    with pytest.raises(ValueError, match="classes"):
        evaluate(model, dm, views=(1, 1), progress=False)
