"""Compare reducers on one published checkpoint from Python: the same weights, one reducer at a time.

    python examples/compare_reducers.py --model MCG-NJU/videomae-base-finetuned-kinetics --data-dir DATA \
        --reducer none --reducer "tome r=8" --reducer "evit keep_rate=0.7"

Each `--reducer` is a name and its arguments, space separated. DATA is a Kinetics-layout folder with
the checkpoint's classes (`videotok compare` does this at scale, decoding each clip once for all rows).
"""
from __future__ import annotations

import argparse
from typing import Optional

import videotok
from videotok.reduce import parse_reducer_args


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="MCG-NJU/videomae-base-finetuned-kinetics")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--reducer", action="append", help="a name and its arguments, e.g. \"tome r=8\"")
    parser.add_argument("--split", default="val")
    parser.add_argument("--views", default="1x1", help="clips x crops per video")
    args = parser.parse_args(argv)

    model = videotok.load(args.model)  # weights converted once; every row swaps only the reducer
    views = tuple(int(v) for v in args.views.split("x"))
    print(f"{'reducer':<28} {'video top-1':>11} {'GFLOPs/view':>12}")
    for spec in args.reducer or ["none", "tome r=8", "evit keep_rate=0.7"]:
        name, *pairs = spec.split()
        with videotok.using_reducer(model, name, **parse_reducer_args(pairs)):
            result = videotok.evaluate(model, args.data_dir, views=views, split=args.split)
        print(f"{spec:<28} {result.video_top1:>10.2f}% {result.gflops_per_view:>12.4g}")


if __name__ == "__main__":
    main()
