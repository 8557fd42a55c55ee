"""Find the videos of a path-label CSV that cannot be decoded, before training trips on them.

    python -m data_tools.verify DATA_DIR/train.csv [--output cleaned.csv] [--decoder auto]

Each video is opened with decord (``--decoder auto``: decord when installed, else PyAV, the
datamodule's default order) and its first, middle and last frames are decoded; whatever its
extension, a file is a video if a decoder reads it. A video the decoder cannot read but
``--fallback-decoder`` (default pyav, as ``data.fallback_decoder``) can is printed as
``FALLBACK <path>: <reason>`` and kept. Unreadable videos are printed as
``BROKEN <path>: <reason>``; ``--output`` writes the CSV without them (original lines, same
order). Paths are relative to ``--data-dir`` (default: the CSV's folder).

Exit code: 0 when every video decodes, 1 when any is broken (so scripts can stop on it; the
cleaned CSV is still written), 2 on bad arguments or an unreadable CSV.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import sys
from pathlib import Path
from typing import Sequence

_DECORD_PREFIX = re.compile(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ")


def _short(error: Exception) -> str:
    """First line of an error without decord's "[hh:mm:ss] file.cc:line:" prefixes."""
    text = _DECORD_PREFIX.sub("", str(error)).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


def _check_decord(path: str) -> str | None:
    import decord

    try:
        reader = decord.VideoReader(path, num_threads=1)
    except Exception as e:  # noqa: BLE001
        return f"cannot open with decord: {_short(e)}"
    n = len(reader)
    if n == 0:
        return "no video frames"
    for index, where in ((0, "first"), (n // 2, "middle"), (n - 1, "last")):
        try:
            reader.get_batch([index])
        except Exception as e:  # noqa: BLE001
            return f"{where} frame ({index} of {n}) does not decode: {_short(e)}"
    return None


def _check_pyav(path: str) -> str | None:
    import av

    try:
        container = av.open(path)
    except Exception as e:  # noqa: BLE001
        return f"cannot open with pyav: {_short(e)}"
    with container:
        if not container.streams.video:
            return "no video stream"
        stream = container.streams.video[0]
        expected, decoded = stream.frames, 0
        try:
            for frame in container.decode(stream):
                if decoded == 0:
                    frame.to_ndarray(format="rgb24")  # first frame fully converted
                decoded += 1
        except Exception as e:  # noqa: BLE001
            return f"decoding stops after {decoded} frames: {_short(e)}"
    if decoded == 0:
        return "no frame decodes"
    if expected and decoded < expected:
        return f"truncated: {decoded} of {expected} frames decode"
    return None


def check_video(path: str, decoder: str) -> str | None:
    """None if ``path`` decodes (first/middle/last frames), else the reason it does not."""
    from videotok.data.video_reader import file_problem  # the rule training applies

    problem = file_problem(path)
    if problem is not None:
        return problem
    return _check_decord(path) if decoder == "decord" else _check_pyav(path)


def _check_row(args: tuple[str, str, str]) -> tuple[str | None, bool]:
    """(reason or None, read by the fallback) for one (path, decoder, fallback) job."""
    path, decoder, fallback = args
    reason = check_video(path, decoder)
    if reason is None or fallback in ("none", decoder) or not os.path.isfile(path) \
            or os.path.getsize(path) == 0:
        return reason, False
    second = check_video(path, fallback)
    if second is None:
        return f"{decoder}: {reason}", True
    return f"{decoder}: {reason}; {fallback}: {second}", False


def resolve_decoder(decoder: str) -> str:
    if decoder != "auto":
        return decoder
    try:
        import decord  # noqa: F401
    except ImportError:
        return "pyav"
    return "decord"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_tools.verify",
        description="Decode the first, middle and last frames of every video in a path-label "
        "CSV; list the unreadable ones and optionally write a cleaned CSV. Exit code 1 if any "
        "video is broken.",
    )
    p.add_argument("csv", type=Path, help="path-label CSV (e.g. DATA_DIR/train.csv)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="root of the CSV's paths (default: the CSV's folder)")
    p.add_argument("--output", type=Path, default=None, help="write the CSV without broken videos here")
    p.add_argument("--decoder", choices=("auto", "decord", "pyav"), default="auto",
                   help="auto: decord if installed, else pyav (default: %(default)s)")
    p.add_argument("--fallback-decoder", choices=("pyav", "decord", "none"), default="pyav",
                   help="tried on a video the decoder cannot read, as data.fallback_decoder "
                   "(default: %(default)s)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="default: all cores")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        lines = [line for line in args.csv.read_text().splitlines() if line.strip()]
    except OSError as e:
        print(f"error: cannot read {args.csv}: {e}", file=sys.stderr)
        return 2
    root = args.data_dir if args.data_dir is not None else args.csv.parent
    decoder = resolve_decoder(args.decoder)
    paths = []
    for line in lines:
        parts = line.rsplit(None, 1)
        rel = parts[0] if len(parts) == 2 and parts[1].lstrip("-").isdigit() else line.strip()
        paths.append(str(root / rel))
    jobs = [(p, decoder, args.fallback_decoder) for p in paths]
    workers = max(1, min(args.workers, len(jobs)))
    if workers > 1:
        with mp.get_context("fork" if sys.platform == "linux" else "spawn").Pool(workers) as pool:
                results = pool.map(_check_row, jobs, chunksize=8)
    else:
        results = [_check_row(j) for j in jobs]
    broken = [(p, r) for p, (r, fell_back) in zip(paths, results) if r is not None and not fell_back]
    for path, (reason, fell_back) in zip(paths, results):
        if fell_back:
            print(f"FALLBACK {path}: {reason}; read by {args.fallback_decoder}")
    for path, reason in broken:
        print(f"BROKEN {path}: {reason}")
    used = decoder if args.fallback_decoder in ("none", decoder) else f"{decoder} or {args.fallback_decoder}"
    print(f"{len(broken)} of {len(paths)} videos unreadable with {used} ({args.csv})")
    if args.output is not None:
        kept = [line for line, (r, fell_back) in zip(lines, results) if r is None or fell_back]
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text("".join(f"{line}\n" for line in kept))
        print(f"{len(kept)} videos written to {args.output}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
