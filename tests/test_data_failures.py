"""Bad inputs are skipped and reported with their path; bad setups fail with clear messages."""

from __future__ import annotations

import shutil
from functools import partial

import pytest

from videotok.data import (
    FailureTracker,
    KineticsDataModule,
    VideoClipDataset,
    VideoDataLoader,
    collate_with_failures,
)
from videotok.data.failures import TooManyBadVideos
from videotok.data.pytorchvideo_compat import LabeledVideoPaths
from videotok.data.transforms import eval_clip_transform, eval_view_transform, train_transform

MEAN, STD = (0.45,) * 3, (0.225,) * 3
SHAPE = (3, 8, 64, 64)
REASONS = {
    "missing": "missing file",
    "empty": "empty file",
    "truncated": "cannot open",
    "not_video": "cannot open",
}


def _dataset(paths, training, labels=None, views=(1, 1), decoder="decord", num_classes=1):
    labels = labels or [0] * len(paths)
    videos = LabeledVideoPaths([(str(p), lab) for p, lab in zip(paths, labels)])
    if training:
        transform, view_transform = train_transform(8, (64, 64), 64, MEAN, STD), None
    else:
        transform, view_transform = eval_clip_transform(8, 64), eval_view_transform(64, views[1], MEAN, STD)
    return VideoClipDataset(videos, num_classes, transform, training=training, num_frames=8,
                            sampling_rate=2, views=views, view_transform=view_transform,
                            decoder=decoder, rank=0, world_size=1)


def _run(dataset, num_workers, batch_size=2):
    loader = VideoDataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                             collate_fn=partial(collate_with_failures, video_shape=SHAPE))
    return list(loader)


def _skipped(batches):
    return {path: reason for b in batches for path, reason in b["skipped"]}


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_bad_videos_skipped_and_reported(broken_videos, training, decoder):
    order = ["good", *REASONS]
    views = (1, 1) if training else (1, 3)
    dataset = _dataset([broken_videos[k] for k in order], training, views=views, decoder=decoder)
    batches = _run(dataset, num_workers=2)  # a bad file must not kill a worker
    skipped = _skipped(batches)
    assert set(skipped) == {str(broken_videos[k]) for k in REASONS}
    for kind, words in REASONS.items():
        assert words in skipped[str(broken_videos[kind])], (kind, skipped[str(broken_videos[kind])])
    assert sum(len(b["skipped"]) for b in batches) == len(REASONS)  # each reported once
    good = [i for b in batches for i in b["video_index"].tolist()]
    if training:  # failures are replaced by readable videos of the same worker's shard
        shard_with_good = next(s for s in (dataset.shard(w, 2, epoch=0) for w in range(2)) if 0 in s)
        assert len(good) == len(shard_with_good) and set(good) == {0}
    else:  # the good video, all 3 views, exactly once
        assert sorted(good) == [0, 0, 0]


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_a_video_is_a_video_whatever_its_extension(broken_videos, decoder):
    dataset = _dataset([broken_videos["wrong_extension"]], training=False, decoder=decoder)  # an mp4 named .txt
    batches = _run(dataset, num_workers=0)
    assert _skipped(batches) == {}
    assert [i for b in batches for i in b["video_index"].tolist()] == [0]


def test_label_outside_classes_skipped_at_runtime(broken_videos):
    dataset = _dataset([broken_videos["good"], broken_videos["good"]], training=False,
                       labels=[0, 5], num_classes=2)
    batches = _run(dataset, num_workers=0)
    (reason,) = _skipped(batches).values()
    assert "label 5 outside the 2 classes" in reason


def test_failures_after_last_sample_ride_on_it(broken_videos):
    dataset = _dataset([broken_videos["good"], broken_videos["truncated"]], training=False)
    samples = list(dataset)
    assert len(samples) == 1
    assert samples[0]["skipped"][0][0] == str(broken_videos["truncated"])


def test_worker_with_only_broken_videos_reports_them(broken_videos):
    """Worker 1 gets rows 1 and 3, both broken: it yields a failure-only record (B = 0)."""
    paths = [broken_videos[k] for k in ("good", "empty", "good", "truncated")]
    batches = _run(_dataset(paths, training=False), num_workers=2)
    assert sorted(_skipped(batches)) == sorted([str(broken_videos["empty"]), str(broken_videos["truncated"])])
    empty = [b for b in batches if b["video"].shape[0] == 0]
    assert len(empty) == 1
    assert empty[0]["video"].shape == (0, *SHAPE)
    assert len(empty[0]["skipped"]) == 2
    assert empty[0]["label"].shape == (0,)


def test_training_shard_all_broken_stops(broken_videos):
    dataset = _dataset([broken_videos["empty"], broken_videos["missing"]], training=True)
    (record,) = list(dataset)  # one failure-only record, then the worker ends
    assert "video" not in record
    assert sorted(record["skipped"]) == [(str(broken_videos["empty"]), "empty file (0 bytes)"),
                                         (str(broken_videos["missing"]), "missing file")]


def test_failure_tracker_raises_above_limit():
    tracker = FailureTracker(max_failure_rate=0.1, min_attempts=10, name="train data")
    tracker.record(5, [("/data/a.mp4", "missing file")])
    assert tracker.attempted == 6  # below min_attempts: no verdict yet
    tracker.record(4)
    with pytest.raises(RuntimeError):
        tracker.record(0, [("/data/b.mp4", "empty file (0 bytes)")])  # 2 of 11 = 18%


def test_failure_tracker_message():
    tracker = FailureTracker(max_failure_rate=0.1, min_attempts=10, name="train data")
    tracker.record(8, [("/data/a.mp4", "missing file")])
    with pytest.raises(RuntimeError) as info:
        tracker.record(0, [("/data/b.mp4", "empty file (0 bytes)")])
    message = str(info.value)
    assert isinstance(info.value, TooManyBadVideos) and "\n" not in message
    assert "2 of 10" in message and "20.0%" in message and "data.max_failure_rate=0.1 (10.0%)" in message
    assert "/data/a.mp4 (missing file)" in message and "/data/b.mp4" in message
    assert "data_tools.verify" in message


def test_failure_tracker_counts_videos_not_views():
    import torch

    tracker = FailureTracker(max_failure_rate=0.5, min_attempts=1)
    batch = {"view_index": torch.tensor([0, 1, 2, 0, 1, 2]), "skipped": [("/x.mp4", "missing file")]}
    assert tracker.update(batch) == [("/x.mp4", "missing file")]
    assert (tracker.loaded, tracker.failed) == (2, 1)
    tracker.check(final=True)  # 33% <= 50%
    small = FailureTracker(max_failure_rate=0.0, min_attempts=100)
    small.record(1, [("/y.mp4", "missing file")])  # too few attempts to judge...
    with pytest.raises(RuntimeError):
        small.check(final=True)  # ...except at the end


def test_failure_tracker_with_a_known_epoch_waits_for_a_certain_verdict():
    """4% bad videos, 2 of them among the first 20: the sample is 10% bad but the epoch is not."""
    tracker = FailureTracker(max_failure_rate=0.05, min_attempts=20)
    tracker.start_epoch(expected=100)
    tracker.record(18, [("/a.mp4", "missing file"), ("/b.mp4", "missing file")])  # 2 of 20
    tracker.record(80, [("/c.mp4", "missing file"), ("/d.mp4", "missing file")])
    tracker.check(final=True)  # 4 of 102 = 3.9%
    tracker.start_epoch(expected=100)  # a new epoch counts afresh
    assert (tracker.loaded, tracker.failed) == (0, 0)
    tracker.record(10, [(f"/{i}.mp4", "missing file") for i in range(5)])
    with pytest.raises(TooManyBadVideos, match="6 of 16"):  # 6 / (100 + 6) > 5%: certain already
        tracker.record(0, [("/x.mp4", "missing file")])


def test_failure_tracker_stops_a_hopeless_epoch_early():
    tracker = FailureTracker(max_failure_rate=0.05, min_attempts=20)
    tracker.start_epoch(expected=100_000)  # the limit alone would wait for 5264 failures
    tracker.record(9, [(f"/{i}.mp4", "missing file") for i in range(10)])
    with pytest.raises(TooManyBadVideos, match="11 of 20"):
        tracker.record(0, [("/x.mp4", "missing file")])


def test_datamodule_counts_failures_per_epoch(synthetic_data_dir, tmp_path, synthetic_datamodule_kwargs):
    data = shutil.copytree(synthetic_data_dir, tmp_path / "data")
    first = (data / "train.csv").read_text().splitlines()[0].rsplit(None, 1)[0]
    (data / first).write_bytes(b"")  # one broken training video
    kwargs = {**synthetic_datamodule_kwargs, "max_failure_rate": 0.5, "num_frames": 4, "crop_size": 32,
              "eval_short_side": 32, "train_scale": (32, 32)}
    datamodule = KineticsDataModule(str(data), **kwargs)
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    tracker = datamodule.failure_tracker("train")
    for _ in range(2):
        for batch in loader:
            tracker.update(batch)
        assert (tracker.failed, tracker.loaded, tracker.expected) == (1, 24, 24)
        tracker.check(final=True)


# -- setup-time checks ---------------------------------------------------------------------


def _copy_dataset(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.mp4"))
    return dst


def test_label_outside_class_list_fails_at_setup(synthetic_data_dir, tmp_path, synthetic_datamodule_kwargs):
    data = _copy_dataset(synthetic_data_dir, tmp_path / "data")
    lines = (data / "val.csv").read_text().splitlines()
    lines[2] = lines[2].rsplit(None, 1)[0] + " 6"  # 6 classes: labels 0..5
    (data / "val.csv").write_text("\n".join(lines) + "\n")
    dm = KineticsDataModule(str(data), **synthetic_datamodule_kwargs)
    with pytest.raises(ValueError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "val.csv" in message and "line 3" in message and "label 6" in message
    assert lines[2].rsplit(None, 1)[0] in message and "classes.txt" in message


def test_non_integer_label_fails_at_setup(synthetic_data_dir, tmp_path, synthetic_datamodule_kwargs):
    data = _copy_dataset(synthetic_data_dir, tmp_path / "data")
    (data / "train.csv").write_text("train/a.mp4 circle_up\n")
    with pytest.raises(ValueError, match="line 1: label 'circle_up' of train/a.mp4 is not an integer"):
        KineticsDataModule(str(data), **synthetic_datamodule_kwargs).setup("fit")


def test_missing_data_dir_names_option_and_fix(tmp_path, synthetic_datamodule_kwargs):
    dm = KineticsDataModule(str(tmp_path / "nowhere"), **synthetic_datamodule_kwargs)
    with pytest.raises(FileNotFoundError) as info:
        dm.setup("fit")
    message = str(info.value)
    assert "data_dir=" in message and str(tmp_path / "nowhere") in message
    assert "python -m data_tools.synthetic" in message and "python -m data_tools.kinetics" in message


def test_missing_csv_fails_for_its_stage_only(synthetic_data_dir, tmp_path, synthetic_datamodule_kwargs):
    data = _copy_dataset(synthetic_data_dir, tmp_path / "data")
    (data / "test.csv").unlink()
    dm = KineticsDataModule(str(data), **synthetic_datamodule_kwargs)
    dm.setup("fit")  # train and val are there
    with pytest.raises(FileNotFoundError, match="test.csv not found"):
        dm.setup("test")


def test_bad_arguments_fail_at_construction(tmp_path):
    with pytest.raises(ValueError, match="decoder"):
        KineticsDataModule(str(tmp_path), decoder="opencv")
    with pytest.raises(ValueError, match="crops 1 or 3"):
        KineticsDataModule(str(tmp_path), test_views=(1, 2))
    with pytest.raises(ValueError, match="eval_short_side"):
        KineticsDataModule(str(tmp_path), crop_size=224, eval_short_side=200)


def test_check_totals_applies_the_limit_to_every_process_counts():
    tracker = FailureTracker(max_failure_rate=0.05, name="train data")
    tracker.record(10, [("a.mp4", "empty"), ("b.mp4", "missing")], check=False)  # 17 %, not checked
    tracker.check_totals(2, 100, processes=2)  # 2 % over both processes: under the limit
    with pytest.raises(TooManyBadVideos) as info:
        tracker.check_totals(4, 28, processes=2)
    message = str(info.value)
    assert "\n" not in message
    assert "4 of 28 videos failed to load over 2 processes (14.3%)" in message
    assert "a.mp4 (empty); b.mp4 (missing) and 2 more" in message  # this process's paths, the rest counted
