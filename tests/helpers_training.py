"""Shared helpers for the end-to-end training tests: the tiny smoke experiment as CLI arguments,
`videotok` run in a subprocess with one torch thread, the CSV logs read back, data-folder copies.

The tiny settings (4 frames, 32 px crops, batch 4, no workers) keep one epoch of the tiny
synthetic set (24 train videos = 6 steps) at a few seconds on a 2-core machine.
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
SMOKE_CONFIG = REPO / "configs" / "experiment" / "smoke.yaml"
TRAIN_VIDEOS_PER_STEP = 4


def tiny_args(data_dir: Path | str, root: Path | str, max_epochs: int = 1) -> list[str]:
    """Options after the subcommand: the smoke experiment shrunk to seconds, logs under `root`."""
    return [
        "--config", str(SMOKE_CONFIG),
        "--data.data_dir", str(data_dir),
        "--data.num_frames", "4",
        "--data.crop_size", "32",
        "--data.eval_short_side", "32",
        "--data.train_scale", "[32, 40]",
        "--data.num_workers", "0",
        "--data.batch_size", str(TRAIN_VIDEOS_PER_STEP),
        "--trainer.max_epochs", str(max_epochs),
        "--trainer.default_root_dir", str(root),
        "--trainer.log_every_n_steps", "1",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ]


def subprocess_env() -> dict[str, str]:
    """One torch thread per process (the machine has 2 cores) and the repo importable."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def videotok_command(argv: Sequence[str]) -> list[str]:
    """`python -m videotok.cli ...`: Lightning's DDP launcher re-runs exactly this per rank."""
    return [sys.executable, "-m", "videotok.cli", *argv]


def run_videotok(argv: Sequence[str], timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    """Run `videotok ARGV` to the end; on an unexpected exit code fail with its output."""
    result = subprocess.run(
        videotok_command(argv), cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"videotok {' '.join(argv[:1])} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


def start_videotok(argv: Sequence[str], log_path: Path) -> subprocess.Popen:
    """Start `videotok ARGV` in the background, stdout and stderr into `log_path`."""
    log = open(log_path, "w")
    return subprocess.Popen(videotok_command(argv), cwd=REPO, env=subprocess_env(), stdout=log,
                            stderr=subprocess.STDOUT)


def metric_rows(root: Path | str) -> list[dict[str, str]]:
    """Rows of every CSVLogger version under `<root>/csv`, oldest version first."""
    versions = sorted((Path(root) / "csv").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    rows: list[dict[str, str]] = []
    for version in versions:
        path = version / "metrics.csv"
        if path.is_file():
            with open(path, newline="") as handle:
                rows += list(csv.DictReader(handle))
    return rows


def last_metrics(root: Path | str, prefix: str) -> dict[str, float]:
    """The last logged value of each metric starting with `prefix` (e.g. "val/")."""
    out: dict[str, float] = {}
    for row in metric_rows(root):
        for key, value in row.items():
            if key and key.startswith(prefix) and value not in ("", None):
                out[key] = float(value)
    return out


def copy_dataset(source: Path, target: Path, keep_rows: Optional[dict[str, int]] = None) -> Path:
    """Copy a Kinetics-layout folder; `keep_rows={"test": 11}` keeps the first 11 rows of test.csv."""
    shutil.copytree(source, target)
    for split, count in (keep_rows or {}).items():
        csv_path = target / f"{split}.csv"
        lines = csv_path.read_text().splitlines()
        csv_path.write_text("\n".join(lines[:count]) + "\n")
    return target


def odd_split_checkpoint(source: Path, work: Path, test_videos: int) -> dict:
    """A copy of the data set `source` whose test split keeps its first `test_videos` rows (an odd
    count does not divide by 2 ranks), and a checkpoint of 2 training steps on it."""
    data = copy_dataset(source, work / "data", keep_rows={"test": test_videos})
    root = work / "train"
    run_videotok(["fit", *tiny_args(data, root), "--trainer.limit_train_batches", "2",
                  "--trainer.limit_val_batches", "0"])
    checkpoint = root / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    return {"data": data, "checkpoint": checkpoint, "work": work}
