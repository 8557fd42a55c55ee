"""How long the uncertainty of a comparison takes (videotok.evaluate.statistics): the intervals and
McNemar tests of every row of a Kinetics-sized comparison, from per-video predictions.

For 72, 2,000 and 19,881 videos (the default synthetic split, a medium one, Kinetics-400's validation
set) at 2,000 resamples, it times `accuracy_intervals` of one result (what `videotok evaluate` adds)
and `comparison_statistics` of a baseline and 16 rows (what `videotok compare`'s report adds), in
seconds, the median of 3 calls, with the process's default torch threads.

    python benchmarks/bootstrap.py

Results are appended to benchmarks/results/bootstrap.md with the machine and date.
"""
from __future__ import annotations

import datetime
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import append_result, describe_machine  # noqa: E402 (benchmarks/machine.py, beside this script)
from videotok.evaluate.statistics import (  # noqa: E402
    RESAMPLES,
    VideoOutcomes,
    accuracy_intervals,
    comparison_statistics,
)

VIDEOS = (72, 2000, 19881)
ROWS = 16  # besides the baseline: the default comparison's strategies


def outcomes(videos: int, accuracy: float, generator: torch.Generator) -> VideoOutcomes:
    """Made-up per-video outcomes: right at video level with probability `accuracy`, 3 views each."""
    right = (torch.rand(videos, generator=generator) < accuracy).long()
    views = torch.full((videos,), 3)
    clip_hits = torch.minimum(views, right * 3 + torch.randint(0, 2, (videos,), generator=generator))
    return VideoOutcomes(tuple(f"video{i:06d}.mp4" for i in range(videos)), right, torch.ones(videos, dtype=torch.long),
                         clip_hits, views)


def seconds(call, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    generator = torch.Generator().manual_seed(0)
    lines = [f"## {datetime.date.today()}", "",
             f"- machine: {describe_machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
             f"{RESAMPLES} resamples", "",
             f"| videos | one result's intervals (s) | baseline + {ROWS} rows: intervals, paired, McNemar (s) |",
             "|---:|---:|---:|"]
    for videos in VIDEOS:
        baseline = outcomes(videos, 0.8, generator)
        rows = {"baseline": [baseline], **{f"row{i}": [outcomes(videos, 0.78, generator)] for i in range(ROWS)}}
        one = seconds(lambda: accuracy_intervals(baseline))
        every = seconds(lambda: comparison_statistics([baseline], rows))
        lines.append(f"| {videos} | {one:.2f} | {every:.2f} |")
        print(lines[-1], flush=True)
    append_result(ROOT / "benchmarks" / "results" / "bootstrap.md",
                  "The uncertainty of a comparison: bootstrap intervals and McNemar tests (seconds)",
                  "bootstrap.py", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
