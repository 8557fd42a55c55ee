"""Pictures to files: the PNG grid with PIL, the animation as a GIF (PIL) or an MP4 (PyAV)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

SUFFIXES = (".png", ".gif", ".mp4")


def check_outputs(paths: Sequence[str], option: str = "--output") -> list[Path]:
    """The output paths, each ending in .png, .gif or .mp4, or a ValueError naming `option`."""
    if not paths:
        raise ValueError(f"{option}: name at least one file (OUT.png, OUT.gif or OUT.mp4)")
    out = [Path(p) for p in paths]
    for path in out:
        if path.suffix.lower() not in SUFFIXES:
            raise ValueError(f"{option} {path}: the suffix decides the format; use one of {', '.join(SUFFIXES)}")
    return out


def write_png(image: np.ndarray, path: Path) -> None:
    Image.fromarray(image).save(path)


def write_gif(frames: Sequence[np.ndarray], path: Path, fps: float) -> None:
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def write_mp4(frames: Sequence[np.ndarray], path: Path, fps: float) -> None:
    """H.264 (yuv420p, so sides are padded to even sizes) where PyAV's FFmpeg has it, else MPEG-4."""
    import av
    from fractions import Fraction

    h, w = frames[0].shape[:2]
    pad = ((0, h % 2), (0, w % 2), (0, 0))
    with av.open(str(path), mode="w") as container:
        try:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        except (ValueError, av.FFmpegError):  # an FFmpeg built without libx264
            stream = container.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w + w % 2, h + h % 2, "yuv420p"
        for frame in frames:
            image = av.VideoFrame.from_ndarray(np.pad(frame, pad, mode="edge"), format="rgb24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_picture(grid: np.ndarray, animation: Sequence[np.ndarray], path: Path, fps: float = 4.0) -> None:
    """Write `grid` (a .png) or `animation` (a .gif or .mp4) to `path`, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".png":
        write_png(grid, path)
    elif suffix == ".gif":
        write_gif(animation, path, fps)
    elif suffix == ".mp4":
        write_mp4(animation, path, fps)
    else:
        raise ValueError(f"{path}: the suffix decides the format; use one of {', '.join(SUFFIXES)}")
