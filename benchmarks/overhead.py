"""Where a reduced forward spends its time: each reducer's own work against the blocks' attention and MLP.

Issue 23 asks why merging rows run slower than the baseline on small models although they count
fewer GFLOPs. This benchmark times, on one process and the same clip, the parts of every forward:

  attention   the blocks' attention (Block.attend), less the placement inside it
  placement   placing merged tokens for divided attention (layers.placement.layout, once per reduction)
  mlp         the blocks' MLP (Block.feed_forward)
  reducer     the reducer's own work: request, reduce (matching, planning, applying the plan), start
  other       the rest of the forward (embedding, norm, head, a reducer's own block loop)

in milliseconds per forward (the median over --repeats forwards after one warm-up), each part's
share of the forward, and the reducer's and placement's time per block. Timers wrap the calls (a
few microseconds each), so the total is a little above an untimed forward.

    python benchmarks/overhead.py                                  # the default comparison's rows
    python benchmarks/overhead.py --model vivit_small_patch16_224 --num-frames 1 --tubelet-size 1 \\
        --img-size 224 --setting "tome r=13" --setting "evit keep_rate=0.7 layers=3,6,9"   # ViT-S
    python benchmarks/overhead.py --model timesformer_base_patch16_224 --num-frames 8 --img-size 224 \\
        --batch-size 1 --repeats 3 --preset configs/reducer/tome_half.yaml ...

Results are appended to benchmarks/results/overhead.md with the machine and date.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import append_result, describe_machine  # noqa: E402 (benchmarks/machine.py, beside this script)
from videotok.compare.settings import load_default_config  # noqa: E402
from videotok.flops import measure_cost  # noqa: E402
from videotok.layers import block as block_module  # noqa: E402
from videotok.models import create_model  # noqa: E402
from videotok.reduce import build_reducer, parse_reducer_args  # noqa: E402
from videotok.reduce.presets import load_preset  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "overhead.md"
PARTS = ("attention", "placement", "mlp", "reducer", "other")


class Timers:
    """Seconds per part, accumulated by wrapped calls; `placement` runs inside `attend`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: Any, name: str, part: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - start

        setattr(owner, name, timed)


@contextlib.contextmanager
def instrumented(model: torch.nn.Module, timers: Timers) -> Iterator[None]:
    """Wrap the blocks, the placement functions the blocks call and the reducer's hooks for a while."""
    saved = {name: getattr(block_module, name) for name in ("layout",)}
    saved_attend, saved_mlp = block_module.Block.attend, block_module.Block.feed_forward
    reducer = model.reducer
    hooks = [name for name in ("request", "reduce", "start") if hasattr(reducer, name)]
    for name in saved:
        timers.wrap(block_module, name, "placement")
    timers.wrap(block_module.Block, "attend", "attend")
    timers.wrap(block_module.Block, "feed_forward", "mlp")
    for name in hooks:
        timers.wrap(reducer, name, "reducer")
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(block_module, name, function)
        block_module.Block.attend, block_module.Block.feed_forward = saved_attend, saved_mlp
        for name in hooks:
            delattr(reducer, name)  # back to the class's method


def profile(model: torch.nn.Module, clip: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median milliseconds per forward of each part over `repeats` forwards (after one warm-up)."""
    rounds: list[dict[str, float]] = []
    with torch.inference_mode():
        model(clip)
        for _ in range(repeats):
            timers = Timers()
            with instrumented(model, timers):
                start = time.perf_counter()
                model(clip)
                total = time.perf_counter() - start
            s = timers.seconds
            parts = {"attention": s["attend"] - s["placement"], "placement": s["placement"], "mlp": s["mlp"],
                     "reducer": s["reducer"]}
            parts["other"] = total - sum(parts.values())
            parts["total"] = total
            rounds.append(parts)
    return {key: 1000 * statistics.median(r[key] for r in rounds) for key in rounds[0]}


def settings(opts: argparse.Namespace) -> list[tuple[str, str, dict]]:
    """(label, reducer, args): the baseline, then --preset files, else the default comparison's rows
    that add no parameters."""
    rows = [("baseline", "none", {})]
    for path in opts.preset or ():
        name, args = load_preset(path)
        rows.append((Path(path).stem, name, args))
    for text in opts.setting or ():
        name, *items = text.split()
        rows.append((text, name, parse_reducer_args(items)))
    if opts.preset or opts.setting:
        return rows
    for row in load_default_config()["compare"]["strategies"]:
        args = dict(row.get("reducer_args") or {})
        if args.get("fusion", True) is False or row["reducer"] not in ("semantic", "crucial_merge"):
            rows.append((row["name"], row["reducer"], args))
    return rows


def run(opts: argparse.Namespace) -> str:
    torch.set_num_threads(opts.threads)
    torch.manual_seed(0)
    shape = dict(num_classes=6, num_frames=opts.num_frames, img_size=opts.img_size, tubelet_size=opts.tubelet_size)
    base = create_model(opts.model, **shape).eval()
    clip = torch.randn(opts.batch_size, 3, opts.num_frames, opts.img_size, opts.img_size)
    lines = [
        f"## {opts.model}, {opts.num_frames}x{opts.img_size}, tubelet {opts.tubelet_size}, batch {opts.batch_size} "
        f"({datetime.date.today()})",
        "",
        f"- machine: {describe_machine()}; torch {torch.__version__}, {opts.threads} thread(s); median of "
        f"{opts.repeats} forwards",
        "",
        "| setting | GFLOPs | total ms | attention | placement | mlp | reducer | other | reducer + placement per block (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, name, args in settings(opts):
        model = create_model(opts.model, reducer=build_reducer(name, **args), **shape).eval()
        model.load_state_dict(base.state_dict(), strict=False)
        ms = profile(model, clip, opts.repeats)
        share = {part: 100 * ms[part] / ms["total"] for part in PARTS}
        cells = " | ".join(f"{ms[part]:.1f} ({share[part]:.0f} %)" for part in PARTS)
        per_block = (ms["reducer"] + ms["placement"]) / len(model.blocks)
        gflops = measure_cost(model).gflops
        lines.append(f"| {label} | {gflops:.4f} | {ms['total']:.1f} | {cells} | {per_block:.2f} |")
        print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="timesformer_tiny")
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--img-size", type=int, default=64)
    p.add_argument("--tubelet-size", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64, help="clips per forward (default 64, the default comparison's evaluation batch)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--preset", action="append", help="a configs/reducer/*.yaml file (repeatable); default: "
                   "the default comparison's rows without parameters")
    p.add_argument("--setting", action="append", help='a reducer and its arguments, e.g. "tome r=13" (repeatable)')
    p.add_argument("--output", default=str(RESULTS), help="markdown file the table is appended to")
    opts = p.parse_args(argv)
    text = run(opts)
    append_result(opts.output, "Where a reduced forward spends its time", "overhead.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
