"""Throughput benchmark: clips/s and peak memory of each reducer against the full-token baseline.

Same backbone, same weights, same input, one process: every setting is a copy of the baseline model
with a different reducer. Eval mode under torch.inference_mode; each model is warmed up, then the
settings are timed in interleaved rounds (baseline, A, B, ..., baseline, A, B, ...) so drift of the
machine (turbo, other load) hits all of them alike; the reported time is the median round.

Columns:
  GFLOPs       per clip, counted on a real forward (videotok.flops.measure_cost; 1 MAC = 1 FLOP)
  FLOPs ratio  baseline GFLOPs / setting GFLOPs: the speedup the FLOPs promise
  speedup      measured clips/s of the setting / clips/s of the baseline
  efficiency   speedup / FLOPs ratio: 100% means matching and merging cost nothing measurable
  peak MiB     CUDA: torch.cuda.max_memory_allocated during the forward minus what was allocated
               before it (tensors only). CPU: the growth of the process's peak resident set (VmHWM,
               reset through /proc/self/clear_refs) over its resident set before the forward, in a
               fresh subprocess per setting; it includes the allocator's slack and the threads'
               scratch buffers, so compare rows with each other rather than with tensor sizes.

Examples:
  python benchmarks/throughput.py --model vivit_small_patch16_224 --num-frames 1 --tubelet-size 1
  python benchmarks/throughput.py --model timesformer_base_patch16_224 --batch-size 1 --repeats 3 \
      --reducer "tome r=8 scope=frame"
  python benchmarks/throughput.py --reducer tome --reducer-arg r=13 --reducer-arg inflection=-1  # ToMe's decreasing schedule
  python benchmarks/throughput.py --model timesformer_base_patch16_224 --batch-size 1 --repeats 3 \
      --preset configs/reducer/semantic_third.yaml --preset configs/reducer/semantic_half.yaml

Presets are the YAML files of configs/reducer/ (`reducer: NAME` and `reducer_args: {...}`); a row is
labelled by the file's name and its arguments. Every model shares the baseline's weight tensors, so
memory holds one backbone however many rows there are.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import yaml
from torch import nn

from videotok.flops import measure_cost
from videotok.models import create_model
from videotok.reduce import build_reducer, parse_reducer_args
from videotok.reduce.presets import load_preset

RESULTS = Path(__file__).resolve().parent / "results"

# Built-in settings: the DESIGN.md fidelity points on a 12-block ViT-S/B, and the naive baselines at
# the same token budget (pool at its default middle block lands at evit's FLOPs on DeiT-S).
DEFAULT_SETTINGS = (
    "tome r=13",
    "evit keep_rate=0.7 layers=3,6,9",
    "random r=13",
    "random keep_rate=0.7 layers=3,6,9",
    "pool",
)


@dataclass
class Setting:
    label: str
    reducer: str
    args: dict[str, Any]


def parse_setting(text: str, extra: list[str]) -> Setting:
    """"tome r=13 scope=frame" (+ --reducer-arg items) -> Setting."""
    name, *items = text.split()
    args = parse_reducer_args(items + extra)
    label = " ".join([name, *(f"{k}={v}" for k, v in args.items())])
    return Setting(label, name, args)


def preset_setting(path: str) -> Setting:
    """configs/reducer/<name>_<level>.yaml -> Setting labelled "<file stem>: <reducer> k=v ..."."""
    name, args = load_preset(path)
    label = " ".join([f"{Path(path).stem}: {name}", *(f"{k}={v}" for k, v in args.items())])
    return Setting(label, name, args)


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name()}"
    return text


def build(opts: argparse.Namespace, setting: Optional[Setting]) -> nn.Module:
    reducer = build_reducer(setting.reducer, **setting.args) if setting else None
    return create_model(
        opts.model, num_classes=opts.num_classes, num_frames=opts.num_frames, img_size=opts.img_size,
        tubelet_size=opts.tubelet_size, reducer=reducer,
    )


def model_overrides(opts: argparse.Namespace) -> None:
    """Fill in the model's own defaults for the options left unset (for the report)."""
    probe = create_model(opts.model, num_classes=1, **{k: v for k, v in
                         dict(num_frames=opts.num_frames, img_size=opts.img_size,
                              tubelet_size=opts.tubelet_size).items() if v is not None})
    opts.num_frames, opts.img_size = probe.num_frames, probe.img_size
    opts.tubelet_size = probe.patch_embed.tubelet_size


def clip(opts: argparse.Namespace, device: torch.device) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(opts.batch_size, 3, opts.num_frames, opts.img_size, opts.img_size, generator=gen).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def precision_context(video: torch.Tensor, autocast: Optional[str]):
    """torch.autocast to `autocast` ("bf16" / "fp16") on the video's device, or nothing."""
    if not autocast:
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[autocast]
    return torch.autocast(video.device.type, dtype=dtype)


def time_models(models: list[nn.Module], video: torch.Tensor, warmup: int, repeats: int,
                autocast: Optional[str] = None) -> list[float]:
    """Median seconds per forward of each model, timed in interleaved rounds."""
    with torch.inference_mode(), precision_context(video, autocast):
        for model in models:
            for _ in range(warmup):
                model(video)
        sync(video.device)
        times: list[list[float]] = [[] for _ in models]
        for _ in range(repeats):
            for i, model in enumerate(models):
                start = time.perf_counter()
                model(video)
                sync(video.device)
                times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_memory_here(model: nn.Module, video: torch.Tensor) -> float:
    """MiB of peak memory a forward adds (see the module doc for what it counts)."""
    with torch.inference_mode():
        if video.device.type == "cuda":
            model(video)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            model(video)
            torch.cuda.synchronize()
            return (torch.cuda.max_memory_allocated() - before) / 2**20
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident set
        before = _status_kib("VmRSS")
        for _ in range(2):
            model(video)
        return (_status_kib("VmHWM") - before) / 1024


def peak_memory(opts: argparse.Namespace, setting: Optional[Setting], device: torch.device) -> float:
    if device.type == "cuda":
        model = build(opts, setting).to(device).eval()
        return peak_memory_here(model, clip(opts, device))
    probe = dict(vars(opts), setting=None if setting is None else vars(setting))
    out = subprocess.run(
        [sys.executable, __file__, "--probe-memory", json.dumps(probe)],
        check=True, capture_output=True, text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def probe_memory(spec: str) -> None:
    """Subprocess entry: build one setting, print its peak memory in MiB."""
    data = json.loads(spec)
    setting = Setting(**data.pop("setting")) if data.get("setting") else None
    opts = argparse.Namespace(**data)
    torch.set_num_threads(opts.threads or torch.get_num_threads())
    model = build(opts, setting).eval()
    print(peak_memory_here(model, clip(opts, torch.device("cpu"))))


def run(opts: argparse.Namespace) -> str:
    device = torch.device(opts.device)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    model_overrides(opts)
    extra = opts.reducer_arg or []
    if extra and len(opts.reducer or []) != 1:
        raise SystemExit("--reducer-arg needs exactly one --reducer to apply to")
    settings = [parse_setting(s, extra) for s in (opts.reducer or ([] if opts.preset else DEFAULT_SETTINGS))]
    settings += [preset_setting(path) for path in opts.preset or []]

    load_before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    torch.manual_seed(0)
    baseline = build(opts, None).eval()
    models = [baseline]
    for setting in settings:
        model = build(opts, setting).eval()
        # assign=True: the model takes the baseline's tensors themselves (one copy of the weights)
        missing, unexpected = model.load_state_dict(baseline.state_dict(), strict=False, assign=True)
        if unexpected or any(not k.startswith("reducer.") for k in missing):
            raise RuntimeError(f"{setting.label}: weights do not match the baseline ({missing}, {unexpected})")
        models.append(model)
    costs = [measure_cost(m) for m in models]
    for m in models:
        m.to(device)
    video = clip(opts, device)
    compile_seconds = 0.0
    if opts.compile:
        # compiled on first call (the warm-up forwards); the time to compile is reported, not timed
        models = [torch.compile(m) for m in models]
        start = time.perf_counter()
        with torch.inference_mode(), precision_context(video, opts.autocast):
            for m in models:
                m(video)
        sync(device)
        compile_seconds = time.perf_counter() - start
    seconds = time_models(models, video, opts.warmup, opts.repeats, opts.autocast)
    memory = [None] * len(models)
    if not opts.no_memory:
        memory = [peak_memory(opts, s, device) for s in [None, *settings]]

    load_after = " ".join(f"{v:.2f}" for v in os.getloadavg())
    rows = []
    labels = ["none (full tokens)", *(s.label for s in settings)]
    for label, cost, sec, mem in zip(labels, costs, seconds, memory):
        ratio = costs[0].gflops / cost.gflops
        speedup = seconds[0] / sec
        rows.append(
            f"| {label} | {cost.gflops:.2f} | {cost.tokens_per_block[-1]} | {ratio:.2f} | "
            f"{opts.batch_size / sec:.2f} | {speedup:.2f} | {100 * speedup / ratio:.0f}% | "
            + (f"{mem:.0f} |" if mem is not None else "- |")
        )
        print(rows[-1], flush=True)

    command = "python benchmarks/throughput.py " + shlex.join(sys.argv[1:])
    return "\n".join([
        f"# Throughput: {opts.model}, {opts.num_frames} frames x {opts.img_size}px, tubelet {opts.tubelet_size}, "
        f"batch {opts.batch_size}",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine()}; load average before the run {load_before}, after {load_after}",
        f"- device: {device}; eval, torch.inference_mode, "
        f"{('autocast ' + opts.autocast) if opts.autocast else 'float32'}"
        f"{f', torch.compile (first calls of all models: {compile_seconds:.0f} s)' if opts.compile else ', eager'}; "
        f"{opts.warmup} warm-up forwards per model, median of {opts.repeats} interleaved rounds",
        f"- command: `{command}`",
        "- peak MiB: " + ("CUDA max_memory_allocated growth during one forward" if device.type == "cuda" else
                          "growth of peak RSS (VmHWM) over RSS before two forwards, fresh subprocess per row"),
        "",
        "| setting | GFLOPs/clip | tokens at end | FLOPs ratio | clips/s | speedup | efficiency | peak MiB |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--model", default="vivit_small_patch16_224")
    p.add_argument("--num-frames", type=int, default=None, help="frames per clip (default: the model's)")
    p.add_argument("--img-size", type=int, default=None, help="(default: the model's)")
    p.add_argument("--tubelet-size", type=int, default=None, help="(default: the model's)")
    p.add_argument("--num-classes", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=10, help="timed rounds; the median is reported")
    p.add_argument("--warmup", type=int, default=2, help="untimed forwards per model first")
    p.add_argument("--reducer", action="append",
                   help='a setting, "NAME [key=value ...]", repeatable (default: ' + "; ".join(DEFAULT_SETTINGS) + ")")
    p.add_argument("--preset", action="append", metavar="YAML",
                   help="a reducer preset file (configs/reducer/*.yaml), repeatable; rows follow the --reducer rows")
    p.add_argument("--reducer-arg", action="append", metavar="KEY=VALUE",
                   help="argument for the single --reducer, repeatable")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory column")
    p.add_argument("--compile", action="store_true", help="time torch.compile'd models (compiled before the warm-up)")
    p.add_argument("--autocast", choices=("bf16", "fp16"), default=None, help="time under torch.autocast (default: float32)")
    p.add_argument("--output", default=None, help="markdown file (default: benchmarks/results/throughput_<model>_<T>x<S>_b<B>.md)")
    p.add_argument("--probe-memory", default=None, help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.probe_memory:
        probe_memory(opts.probe_memory)
        return 0
    report = run(opts)
    out = Path(opts.output) if opts.output else RESULTS / (
        f"throughput_{opts.model}_{opts.num_frames}x{opts.img_size}_b{opts.batch_size}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
