"""Reading a video from its first frame on, for files that neither decoder can seek in.

decord and PyTorchVideo's PyAV reader both jump to a clip's start (a seek, then decoding from the
nearest keyframe). Some files have nothing to seek by: an SWF's FLV stream has no index or duration
(decord: "broken metadata", PyAV's reader: "Unable to decode video stream"), yet PyAV decodes all
of its frames when it just reads the stream in order. ``StreamVideo`` does exactly that: no seek,
the frames a clip asks for are kept as the stream passes them, decoding stops at the last one
needed, and a later clip of the same video continues from there (evaluation's clips come in
order). Decoding is bounded: past ``max_frames`` decoded frames for one video it gives up, naming
the cap.

Frame i is the i-th frame of the stream: a zero-byte packet (Theora's "the previous frame again")
repeats the previous frame, as players show it; PyAV would take it for the end of the stream.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Optional

import torch

from videotok.data.failures import VideoLoadError
from videotok.data.pytorchvideo_compat import Video
from videotok.data.frames import frame_indices

MAX_DECODED_FRAMES = 20_000  # per video: about 14 minutes at 24 fps
# FFmpeg's only Theora decoder (vp3) rejects most frame packets of some streams ("error in
# unpack_block_qpis"), measured alike with FFmpeg 6.1 (PyAV 12) and 8.0 (PyAV 18, decord2), with every
# threading option, and with the packets and headers read from the Ogg pages directly instead of by
# FFmpeg's demuxer (identical): nothing a reader can change. The skip reason says so.
THEORA_HINT = "FFmpeg's Theora decoder rejects this stream (any FFmpeg, any threading): re-encode it, e.g. to H.264"


class StreamVideo(Video):
    """A video PyAV reads in order, never seeking (see the module docstring)."""

    def __init__(self, path: str, max_frames: int = MAX_DECODED_FRAMES) -> None:
        import av

        self._name = os.path.basename(path)
        self._path = path
        self._max_frames = max_frames
        self._decoded = 0  # frames decoded for this video so far, every pass together
        self._container: Any = av.open(path)
        streams = self._container.streams.video
        if not streams:
            self.close()
            raise VideoLoadError("no video stream")
        stream = streams[0]
        self.codec = stream.codec_context.name
        rate = stream.average_rate or stream.guessed_rate
        self._fps = float(rate) if rate else 0.0
        self._num_frames = int(stream.frames or 0) or self._count_packets()
        if self._num_frames == 0 or self._fps <= 0:
            self.close()
            raise VideoLoadError("no video frames")
        self._frames: Optional[Iterator[torch.Tensor]] = None
        self._position = 0  # index of the next frame `_frames` yields

    @property
    def name(self) -> str:
        return self._name

    @property
    def duration(self) -> float:
        return self._num_frames / self._fps

    def _count_packets(self) -> int:
        """Frames of a stream whose header does not say (SWF): its packets, read without decoding."""
        stream = self._container.streams.video[0]
        return sum(1 for packet in self._container.demux(stream) if packet.dts is not None)

    def _stream(self) -> Iterator[torch.Tensor]:
        """Every frame as uint8 [H, W, C], from the first; a zero-byte packet repeats the last."""
        import av

        self._container.close()
        self._container = av.open(self._path)
        stream = self._container.streams.video[0]
        last: Optional[torch.Tensor] = None
        for packet in self._container.demux(stream):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            if packet.size == 0:
                if last is not None:
                    yield last
                continue
            for frame in packet.decode():
                last = torch.from_numpy(frame.to_ndarray(format="rgb24"))
                yield last

    def _take(self, indices: list[int]) -> list[torch.Tensor]:
        """The frames at `indices` (ascending), continuing the current pass when it has not passed them."""
        if self._frames is None or indices[0] < self._position:
            self._frames, self._position = self._stream(), 0
        kept: list[Optional[torch.Tensor]] = [None] * len(indices)
        repeats: dict[int, list[int]] = {}
        for n, i in enumerate(indices):
            repeats.setdefault(i, []).append(n)
        while self._position <= indices[-1]:
            if self._decoded >= self._max_frames:
                raise VideoLoadError(f"read from the start: stopped after {self._max_frames} decoded frames "
                                     f"(the cap), before frame {indices[-1]}")
            try:
                frame = next(self._frames)
            except StopIteration:
                break
            except Exception as e:  # noqa: BLE001 - any decoding error ends this video's read
                hint = f"; {THEORA_HINT}" if self.codec == "theora" else ""
                text = str(e).splitlines()[0][:120] if str(e) else ""
                raise VideoLoadError(f"read from the start: frame {self._position} of {self._num_frames} "
                                     f"failed: {type(e).__name__}: {text}{hint}") from e
            self._decoded += 1
            for n in repeats.get(self._position, ()):
                kept[n] = frame
            self._position += 1
        missing = [indices[n] for n, f in enumerate(kept) if f is None]
        if missing:
            raise VideoLoadError(f"read from the start: the stream ends at frame {self._position}, "
                                 f"its header says {self._num_frames} (frame {missing[0]} asked for)")
        return kept  # type: ignore[return-value]

    def get_clip(self, start_sec: float, end_sec: float,
                 num_samples: Optional[int] = None) -> dict[str, Optional[torch.Tensor]]:
        """Frames in [start_sec, end_sec) as float [C, T, H, W] in 0..255 (``num_samples`` of them)."""
        indices = frame_indices(self._fps, self._num_frames, start_sec, end_sec, num_samples)
        if not indices:
            return {"video": None, "audio": None}
        frames = torch.stack(self._take(indices))  # [T, H, W, C]
        return {"video": frames.permute(3, 0, 1, 2).float(), "audio": None}

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None
