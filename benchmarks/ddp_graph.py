"""What each DDP graph option costs per training step: plain, `static_graph`, `find_unused_parameters`.

`VideoClassifier.setup` asks DDP for a static graph whenever a reducer is configured (some leave
parameters unused by design, which plain DDP refuses). This measures that choice against the
alternative on real training steps (forward, cross-entropy, backward with the gradient all-reduce,
AdamW step): 2 processes (gloo on CPU, NCCL on GPUs), one thread each, the same model, batch and
number of steps for every option, interleaved; the reported time is the median step after warm-up.

  python benchmarks/ddp_graph.py                                   # tiny TimeSformer, CPU
  python benchmarks/ddp_graph.py --model timesformer_base_patch16_224 --img-size 224 --steps 10
  python benchmarks/ddp_graph.py --output benchmarks/results/ddp_graph.md

A configuration that leaves parameters unused cannot run plain ("-" in the table).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from videotok.models import create_model
from videotok.reduce import build_reducer, parse_reducer_args

OPTIONS = {
    "plain": {},
    "static_graph": {"static_graph": True},
    "find_unused_parameters": {"find_unused_parameters": True},
}
SETTINGS = (
    ("none", ""),
    ("crucial_merge", "keep_rate=0.7 layers=1,3"),
    ("tome", "r=8"),
    ("semantic", "layer=2 tokens=2x2x2"),
)


def _step_times(rank: int, world: int, args: argparse.Namespace, reducer: str, reducer_args: str,
                port: int, out: dict) -> None:
    """One process group, one DDP copy of the model per option, their steps interleaved (option A,
    B, C, A, B, C, ...) so that load from elsewhere on the machine hits every option alike."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    reducer_kwargs = parse_reducer_args(reducer_args.split())
    runs = {}
    for option, kwargs in OPTIONS.items():
        torch.manual_seed(0)
        model = create_model(args.model, reducer=build_reducer(reducer, **reducer_kwargs), num_classes=6,
                             num_frames=args.num_frames, img_size=args.img_size).to(device)
        ddp = DistributedDataParallel(model, device_ids=[rank] if cuda else None, **kwargs)
        runs[option] = (ddp, torch.optim.AdamW(ddp.parameters(), lr=1e-4), [])
    video = torch.randn(args.batch_size, 3, args.num_frames, args.img_size, args.img_size, device=device)
    label = torch.arange(args.batch_size, device=device) % 6
    failed = set()
    for _ in range(args.warmup + args.steps):
        for option, (ddp, optimizer, times) in runs.items():
            if option in failed:
                continue
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            try:
                F.cross_entropy(ddp(video), label).backward()
            except RuntimeError:  # plain DDP on a graph with unused parameters (both ranks raise)
                failed.add(option)
                optimizer.zero_grad(set_to_none=True)
                continue
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    if rank == 0:
        for option, (_, _, times) in runs.items():
            if option not in failed:
                out[option] = 1000 * statistics.median(times[args.warmup:])
    dist.destroy_process_group()


def measure(args: argparse.Namespace, reducer: str, reducer_args: str, port: int) -> list[str]:
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_step_times, args=(2, args, reducer, reducer_args, port, out), nprocs=2, join=True)
        return [f"{out[o]:.1f}" if o in out else "-" for o in OPTIONS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="timesformer_tiny")
    parser.add_argument("--num-frames", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None, help="also write the table (markdown) here")
    args = parser.parse_args()
    lines = [
        f"# DDP graph options: ms per training step ({args.model}, {args.num_frames}x{args.img_size}, "
        f"batch {args.batch_size} per process, 2 processes)",
        "",
        f"- Date: {datetime.date.today()}; machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, "
        f"{'NCCL on ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'gloo on CPU, 1 thread per process'}",
        f"- Command: `python benchmarks/ddp_graph.py --model {args.model} --num-frames {args.num_frames} "
        f"--img-size {args.img_size} --batch-size {args.batch_size} --steps {args.steps}`; median of "
        f"{args.steps} steps after {args.warmup} warm-up steps, the options' steps interleaved.",
        "",
        "| reducer | " + " | ".join(OPTIONS) + " |",
        "|---|" + "---:|" * len(OPTIONS),
    ]
    port = 29600
    for reducer, reducer_args in SETTINGS:
        port += 1
        cells = measure(args, reducer, reducer_args, port)
        lines.append(f"| {reducer} {reducer_args} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)


if __name__ == "__main__":
    main()
