"""Open a video file and read one clip of it, turning every problem into a ``VideoLoadError``.

Two decoders behind PyTorchVideo's ``Video`` interface (duration, get_clip, close):

- ``decord`` (default): ``DecordVideo`` below. It picks the clip's frames the way
  PyTorchVideo does (time window -> frame indices, then ``UniformTemporalSubsample``'s
  linspace) but asks decord only for those frames. PyTorchVideo's own decord wrapper decodes
  and converts every frame of the window to float first, which measured 4-5x slower for an
  8x4 clip (benchmarks/results/decoders.md).
- ``pyav``: PyTorchVideo's ``EncodedVideo`` (PyAV), then the same subsampling.
- ``pyav_from_start`` (``FROM_START``): the last resort after a PyAV fallback, for files neither
  can seek in: PyAV reads the stream in order and keeps the frames asked for (stream_reader.py).

Whether a file is a video is decided by opening it, never by its extension: FFmpeg (under both
decoders) reads .mpg, .flv, .wmv, .3gp, ... as well as .mp4, and data sets name files as they
like. Only a missing or empty file is refused before a decoder is asked (``file_problem``).
"""

from __future__ import annotations

import os
import re
from typing import Optional

import torch

from videotok.data.failures import VideoLoadError
from videotok.data.frames import frame_indices, subsample_indices
from videotok.data.pytorchvideo_compat import DECODERS, EncodedVideo, Video, video_fps

NO_FALLBACK = "none"
FROM_START = "pyav_from_start"  # PyAV reading a stream in order, never seeking (stream_reader.py)
_MODULES = {"decord": "decord", "pyav": "av"}
_PACKAGES = {"decord": "decord2", "pyav": "av"}
_DECORD_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")


def check_decoder(decoder: str, option: str = "decoder") -> None:
    """Fail early, in the main process, on an unknown or uninstalled decoder (``option``: the
    setting's name in messages)."""
    if decoder not in DECODERS:
        raise ValueError(f"{option} must be one of {DECODERS}, got {decoder!r}")
    module = _MODULES[decoder]
    try:
        __import__(module)
    except ImportError as e:
        raise ImportError(
            f"{option}={decoder!r} needs the {module} module: pip install {_PACKAGES[decoder]} ({e})"
        ) from e


def decoder_chain(decoder: str, fallback_decoder: str = NO_FALLBACK) -> tuple[str, ...]:
    """The decoders tried on each video, in order: the configured one, then the fallback
    (``"none"``, or the same decoder, adds nothing; both are checked here), then, with any
    fallback, PyAV reading the stream from the start (``FROM_START``: files no decoder can seek in)."""
    check_decoder(decoder)
    if fallback_decoder in (NO_FALLBACK, None, ""):
        return (decoder,)
    if fallback_decoder not in DECODERS:
        raise ValueError(
            f"fallback_decoder must be one of {DECODERS} or {NO_FALLBACK!r}, got {fallback_decoder!r}"
        )
    check_decoder(fallback_decoder, option="fallback_decoder")
    chain = (decoder,) if fallback_decoder == decoder else (decoder, fallback_decoder)
    return (*chain, FROM_START) if "pyav" in chain else chain


def file_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be a video whatever the decoder (missing, not a file, empty), else None."""
    if not os.path.exists(path):
        return "missing file"
    if not os.path.isfile(path):
        return "not a file"
    if os.path.getsize(path) == 0:
        return "empty file (0 bytes)"
    return None


class DecordVideo(Video):
    """A video read with decord, decoding only the frames a clip needs."""

    def __init__(self, path: str, num_threads: int = 1) -> None:
        import decord

        self._name = os.path.basename(path)
        self._reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=num_threads)
        self._num_frames = len(self._reader)
        self._fps = float(self._reader.get_avg_fps())  # read by pytorchvideo_compat.video_fps
        if self._num_frames == 0 or self._fps <= 0:
            raise VideoLoadError("no video frames")

    @property
    def name(self) -> str:
        return self._name

    @property
    def duration(self) -> float:
        return self._num_frames / self._fps

    def get_clip(
        self, start_sec: float, end_sec: float, num_samples: Optional[int] = None
    ) -> dict[str, Optional[torch.Tensor]]:
        """Frames in [start_sec, end_sec) as float [C, T, H, W] in 0..255 (``num_samples`` of them)."""
        indices = frame_indices(self._fps, self._num_frames, start_sec, end_sec, num_samples)
        if not indices:
            return {"video": None, "audio": None}
        frames = self._reader.get_batch(indices)
        if not isinstance(frames, torch.Tensor):  # decord's bridge is global state
            frames = torch.from_numpy(frames.asnumpy())
        video = frames.permute(3, 0, 1, 2).float()  # [T, H, W, C] -> [C, T, H, W]
        return {"video": video, "audio": None}

    def close(self) -> None:
        self._reader = None


def _reason(error: Exception) -> str:
    """First line of an error without decord's "[hh:mm:ss] file.cc:line:" prefixes."""
    text = _DECORD_PREFIX.sub("", str(error)).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


def open_video(path: str, decoder: str = "decord") -> Video:
    """Open ``path`` after cheap checks; raise ``VideoLoadError`` with a short reason."""
    problem = file_problem(path)
    if problem is not None:
        raise VideoLoadError(problem)
    try:
        if decoder == "decord":
            video = DecordVideo(path)
        elif decoder == FROM_START:
            from videotok.data.stream_reader import StreamVideo

            video = StreamVideo(path)
        else:
            video = EncodedVideo.from_path(path, decode_audio=False, decoder=decoder)
    except VideoLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoder error means "unreadable"
        raise VideoLoadError(f"cannot open with {decoder}: {_reason(e)}") from e
    if not video.duration or video.duration <= 0:
        raise VideoLoadError(f"{decoder} finds no video duration")
    return video


def _own_readers() -> tuple[type, ...]:
    from videotok.data.stream_reader import StreamVideo

    return (DecordVideo, StreamVideo)


def read_clip(video: Video, start_sec: float, end_sec: float, num_frames: int) -> torch.Tensor:
    """``num_frames`` frames spread over [start_sec, end_sec): float [C, T, H, W] in 0..255."""
    try:
        if isinstance(video, _own_readers()):  # ours pick the frames themselves, decoding only those
            clip = video.get_clip(start_sec, end_sec, num_samples=num_frames)["video"]
        else:
            clip = video.get_clip(start_sec, end_sec)["video"]
            if clip is not None and clip.shape[1] > 0:
                index = torch.tensor(subsample_indices(clip.shape[1], num_frames))
                clip = clip.index_select(1, index)  # [C, T_window, H, W] -> [C, T, H, W]
    except VideoLoadError as e:  # a reader's own reason, whole
        raise VideoLoadError(f"decoding {float(start_sec):.2f}-{float(end_sec):.2f}s: {e}") from e
    except Exception as e:  # noqa: BLE001
        window = f"{float(start_sec):.2f}-{float(end_sec):.2f}s"
        raise VideoLoadError(f"decoding {window} failed: {_reason(e)}") from e
    if clip is None or clip.shape[1] == 0:
        raise VideoLoadError(f"no frames decoded in {float(start_sec):.2f}-{float(end_sec):.2f}s")
    return clip


__all__ = [
    "DecordVideo",
    "FROM_START",
    "NO_FALLBACK",
    "check_decoder",
    "decoder_chain",
    "file_problem",
    "frame_indices",
    "open_video",
    "read_clip",
    "subsample_indices",
    "video_fps",
]
