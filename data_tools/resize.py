"""Re-encode a folder of videos to a short side (default 320 px) with PyAV, in parallel.

Kinetics clips come at up to 1080p; decoding them is most of a training step. The usual
recipe stores them at short side 320 (train crops are scaled to 256-320 anyway).

    python -m data_tools.resize SRC DST [--short-side 320] [--workers N]

Mirrors SRC's tree under DST as H.264 ``.mp4`` (same stem, constant frame rate at the
source's average rate, audio dropped: videotok never decodes audio).
Resumable: an existing output is skipped. Each video is written to ``<name>.part`` and renamed
when complete, so a killed run leaves no half file (stale ``.part`` files are removed at the
next start). Failures are listed and written to DST/resize_failures.txt.

Exit code: 0 if every video is done, 1 if any failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from data_tools.layout import is_video_name

PART_SUFFIX = ".part"


@dataclass(frozen=True)
class ResizeJob:
    src: str
    dst: str
    short_side: int
    upscale: bool
    crf: int
    preset: str


def target_size(width: int, height: int, short_side: int, upscale: bool = False) -> tuple[int, int]:
    """(width, height) with the short side at ``short_side``, both even (yuv420p needs it)."""
    short = min(width, height)
    scale = short_side / short if (upscale or short > short_side) else 1.0

    def even(x: float) -> int:
        return max(2, int(round(x / 2)) * 2)

    return even(width * scale), even(height * scale)


def resize_video(job: ResizeJob) -> tuple[str, str | None]:
    """Encode one video; return (src, None) or (src, reason). Never raises."""
    import av

    tmp = job.dst + PART_SUFFIX
    try:
        Path(job.dst).parent.mkdir(parents=True, exist_ok=True)
        with av.open(job.src) as inp:
            if not inp.streams.video:
                return job.src, "no video stream"
            ins = inp.streams.video[0]
            ins.thread_type = "AUTO"
            rate = ins.average_rate or ins.guessed_rate or Fraction(25)
            width, height = target_size(ins.codec_context.width, ins.codec_context.height,
                                        job.short_side, job.upscale)
            rate = Fraction(rate).limit_denominator(100_000)
            frames = 0
            with av.open(tmp, mode="w", format="mp4") as out:
                outs = out.add_stream("libx264", rate=rate)
                outs.width, outs.height, outs.pix_fmt = width, height, "yuv420p"
                outs.options = {"crf": str(job.crf), "preset": job.preset}
                outs.codec_context.thread_count = 1  # parallel across files instead
                for frame in inp.decode(ins):
                    new = frame.reformat(width=width, height=height, format="yuv420p")
                    new.pts, new.time_base = frames, 1 / rate  # constant frame rate
                    out.mux(outs.encode(new))
                    frames += 1
                out.mux(outs.encode())
        if frames == 0:
            os.remove(tmp)
            return job.src, "no frame decoded"
        os.replace(tmp, job.dst)
        return job.src, None
    except Exception as e:  # noqa: BLE001 - report, keep going
        if os.path.exists(tmp):
            os.remove(tmp)
        first = str(e).splitlines()[0] if str(e) else ""
        return job.src, f"{type(e).__name__}: {first[:200]}"


def plan(src: Path, dst: Path, short_side: int, upscale: bool, crf: int, preset: str
         ) -> tuple[list[ResizeJob], int]:
    """Jobs for the videos under ``src`` whose output does not exist yet; and how many do."""
    jobs, done = [], 0
    for root, dirs, files in os.walk(src):
        dirs.sort()
        if Path(root).resolve() == dst.resolve():
            dirs[:] = []  # DST inside SRC: do not resize our own outputs
            continue
        for name in sorted(files):
            if not is_video_name(name):  # any container FFmpeg reads, not only .mp4-like ones
                continue
            rel = Path(root, name).relative_to(src).with_suffix(".mp4")
            out = dst / rel
            if out.is_file() and out.stat().st_size > 0:
                done += 1
                continue
            jobs.append(ResizeJob(str(Path(root, name)), str(out), short_side, upscale, crf, preset))
    return jobs, done


def remove_partials(dst: Path) -> int:
    """Delete ``*.part`` files a killed run left in ``dst``; return how many."""
    count = 0
    for path in dst.rglob(f"*{PART_SUFFIX}") if dst.is_dir() else []:
        path.unlink(missing_ok=True)
        count += 1
    return count


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_tools.resize",
        description="Re-encode every video under SRC to short side --short-side as H.264 mp4 "
        "under DST (same tree). Resumable; parallel; failures listed in DST/resize_failures.txt.",
    )
    p.add_argument("src", type=Path, help="folder of videos (searched recursively)")
    p.add_argument("dst", type=Path, help="output folder")
    p.add_argument("--short-side", type=int, default=320, help="default: %(default)s")
    p.add_argument("--upscale", action="store_true", help="also enlarge videos smaller than that")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="default: all cores")
    p.add_argument("--crf", type=int, default=23, help="x264 quality, lower is better (default: %(default)s)")
    p.add_argument("--preset", default="veryfast", help="x264 preset (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.src.is_dir():
        print(f"error: {args.src} is not a folder", file=sys.stderr)
        return 2
    if args.short_side < 2:
        print("error: --short-side must be >= 2", file=sys.stderr)
        return 2
    stale = remove_partials(args.dst)
    jobs, done = plan(args.src, args.dst, args.short_side, args.upscale, args.crf, args.preset)
    removed = f", {stale} partial file(s) removed" if stale else ""
    print(f"{len(jobs)} to encode, {done} already done{removed}")
    failures: list[tuple[str, str]] = []
    if jobs:
        from tqdm import tqdm

        workers = max(1, min(args.workers, len(jobs)))
        context = mp.get_context("fork" if sys.platform == "linux" else "spawn")
        pool = context.Pool(workers) if workers > 1 else None
        results = pool.imap_unordered(resize_video, jobs) if pool else map(resize_video, jobs)
        try:
            for src, reason in tqdm(results, total=len(jobs), unit="video", disable=args.no_progress):
                if reason is not None:
                    failures.append((src, reason))
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    report = args.dst / "resize_failures.txt"
    if failures:
        args.dst.mkdir(parents=True, exist_ok=True)
        report.write_text("".join(f"{src}\t{reason}\n" for src, reason in sorted(failures)))
        print(f"{len(failures)} failed (listed in {report}):", file=sys.stderr)
        for src, reason in sorted(failures)[:20]:
            print(f"  {src}: {reason}", file=sys.stderr)
        return 1
    report.unlink(missing_ok=True)
    print(f"encoded {len(jobs)}, total {len(jobs) + done} in {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
