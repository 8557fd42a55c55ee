"""Does the default `videotok compare` baseline learn the synthetic set on any CPU and seed? (issue 29)

Trains the baseline exactly as the default `videotok compare` does (the embedded config, one
training-free row beside it so that the comparison runs; `--full` runs every row) once per case,
each case in its own process so that `ATEN_CPU_CAPABILITY` picks torch's CPU kernels (`default`,
`avx2`, `avx512`; empty: what the CPU has), and records per case: video and clip top-1 of the
baseline on the test split, the last validation loss, the first epoch whose validation clip top-1
reached 95 %, wall time and CPU time (user + sys of the process and its data workers; on a machine
shared with other jobs the wall time is inflated, the CPU time much less).

    python benchmarks/default_baseline.py --seeds 0 1 2 --capabilities avx2 default
    python benchmarks/default_baseline.py --seeds 0 --full      # the whole default run, timed

Every case uses one synthetic set (generated once in --data-dir). Results are appended to
benchmarks/results/default_baseline.md with the machine, the date and the load average.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import append_result, describe_machine  # noqa: E402 (benchmarks/machine.py, beside this script)

RESULTS = ROOT / "benchmarks" / "results" / "default_baseline.md"
BESIDE = "tome_r4"  # the training-free row run beside the baseline (compare needs one)
TARGET = 97.0  # video top-1 the baseline must reach (issue 29)


def case_config(data_dir: Path, run_dir: Path, seed: int) -> dict:
    config = yaml.safe_load((ROOT / "videotok" / "defaults" / "compare.yaml").read_text())
    config["data"]["data_dir"] = str(data_dir)
    config["compare"].update(seed=seed, run_dir=str(run_dir))
    return config


def validation_curve(run_dir: Path) -> list[tuple[int, float, float]]:
    """(epoch, val loss, val clip top-1 %) of the baseline's training, from its CSV log."""
    logs = sorted((run_dir / "baseline" / "csv").glob("*/metrics.csv"))
    rows = list(csv.DictReader(open(logs[-1]))) if logs else []
    return [(int(r["epoch"]), float(r["val/loss"]), 100 * float(r["val/clip_top1"])) for r in rows if r.get("val/loss")]


def run_case(data_dir: Path, work: Path, seed: int, capability: str, full: bool) -> dict:
    run_dir = work / f"seed{seed}_{capability or 'native'}{'_full' if full else ''}"
    config_path = run_dir.with_suffix(".yaml")
    config_path.write_text(yaml.safe_dump(case_config(data_dir, run_dir, seed)))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("ATEN_CPU_CAPABILITY", None)
    if capability:
        env["ATEN_CPU_CAPABILITY"] = capability
    argv = [sys.executable, "-m", "videotok.cli", "compare", "--config", str(config_path), "--no-progress"]
    if not full:
        argv += ["--only", BESIDE]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        raise SystemExit(f"case seed {seed} {capability or 'native'} failed:\n{tail}")
    results = json.loads((run_dir / "results.json").read_text())
    rows = {r["name"]: r for r in results["rows"]}
    curve = validation_curve(run_dir)
    learned = next((epoch for epoch, _, top1 in curve if top1 >= 95.0), None)
    return {"seed": seed, "capability": capability or "native", "full": full,
            "video_top1": rows["baseline"]["video_top1"], "clip_top1": rows["baseline"]["clip_top1"],
            "videos": results["meta"]["videos_evaluated"],
            "pass_s": (results["meta"].get("evaluation") or {}).get("wall_seconds", float("nan")),
            "val_loss": curve[-1][1] if curve else float("nan"), "epoch_95": learned,
            "wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def markdown(cases: list[dict], load: tuple[float, float]) -> str:
    import torch

    date = datetime.date.today().isoformat()
    lines = [f"## {len(cases)} case(s), {date}", "",
             f"- machine: {describe_machine()}; torch {torch.__version__}, native CPU capability "
             f"{torch.backends.cpu.get_cpu_capability()}",
             f"- load average (1 min) at the start and end: {load[0]:.1f}, {load[1]:.1f} (the cores were shared "
             "when it is above the core count: wall times are inflated, CPU times much less)", "",
             "| seed | ATEN_CPU_CAPABILITY | rows | test videos | video top-1 | clip top-1 | last val loss | "
             "first epoch val >= 95 % | wall (s) | of it the evaluation pass (s) | CPU user+sys (s) |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in cases:
        rows = "all" if c["full"] else f"baseline + {BESIDE}"
        lines.append(f"| {c['seed']} | {c['capability']} | {rows} | {c['videos']} | {c['video_top1']:.1f} | "
                     f"{c['clip_top1']:.1f} | {c['val_loss']:.3f} | {c['epoch_95'] if c['epoch_95'] is not None else 'never'} | {c['wall_s']:.0f} | "
                     f"{c['pass_s']:.0f} | {c['cpu_s']:.0f} |")
    worst = min(c["video_top1"] for c in cases)
    lines += ["", f"Lowest baseline video top-1 {worst:.1f} % against the target {TARGET:.0f} %: "
              f"**{'met' if worst >= TARGET else 'not met'}**.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--capabilities", nargs="+", default=[""],
                        help="ATEN_CPU_CAPABILITY values ('' for the CPU's own), e.g. avx2 default")
    parser.add_argument("--full", action="store_true", help="run every row of the default comparison")
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "synthetic"),
                        help="the synthetic set (made if missing)")
    parser.add_argument("--work-dir", help="where the runs go (default: a temporary folder)")
    parser.add_argument("--no-record", action="store_true", help="print, do not append to the results file")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="default_baseline_") as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        cases = []
        for seed in args.seeds:
            for capability in args.capabilities:
                cases.append(run_case(Path(args.data_dir).resolve(), work, seed, capability, args.full))
                print(json.dumps(cases[-1]), flush=True)
    text = markdown(cases, (load_start, os.getloadavg()[0]))
    print(text)
    if not args.no_record:
        title = "The default comparison's baseline across seeds and CPU kernels"
        append_result(RESULTS, title, "default_baseline.py", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
