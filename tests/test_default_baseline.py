"""The default `videotok compare` baseline learns the synthetic set on any seed and CPU kernels (issue 29).

On main before issue 29 the same command reached 100 % video top-1 on an AVX-512 CPU and 88.9 % on
an AVX2 one: the set was learned at the edge of the training budget, so which rows looked better
than the baseline depended on the machine. Each case trains the baseline as the default comparison
does (one training-free row beside it, so that the comparison runs) in its own process, with torch's
CPU kernels forced by `ATEN_CPU_CAPABILITY` (read when torch loads). 615-707 s of CPU a case (about 5-6 minutes on 2
idle cores), hence `slow`; the recorded runs are in benchmarks/results/default_baseline.md.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers_training import REPO, subprocess_env, videotok_command

TARGET = 97.0  # video top-1 on the default test split, %
CASES = [(0, "avx2"), (0, "default"), (1, "avx2"), (2, "avx2"), (1, "default")]


@pytest.fixture(scope="module")
def default_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data_tools.synthetic import generate_synthetic

    return generate_synthetic(tmp_path_factory.mktemp("default_set") / "synthetic")  # the defaults' set


@pytest.mark.slow
@pytest.mark.parametrize("seed,capability", CASES)
def test_default_baseline_learns_the_set(default_set: Path, tmp_path: Path, seed: int, capability: str) -> None:
    config = yaml.safe_load((REPO / "videotok" / "defaults" / "compare.yaml").read_text())
    config["data"]["data_dir"] = str(default_set)
    config["compare"].update(seed=seed, run_dir=str(tmp_path / "compare"))
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(config))
    env = dict(subprocess_env(), ATEN_CPU_CAPABILITY=capability)
    done = subprocess.run(videotok_command(["compare", "--config", str(path), "--only", "tome_r4", "--no-progress"]),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "compare" / "results.json").read_text())
    baseline = next(row for row in results["rows"] if row["name"] == "baseline")
    assert results["meta"]["videos_evaluated"] >= 240  # one video is well under a point
    assert baseline["video_top1"] >= TARGET, (
        f"seed {seed}, ATEN_CPU_CAPABILITY={capability}: the baseline reached {baseline['video_top1']:.1f} % "
        f"video top-1 (clip {baseline['clip_top1']:.1f} %), below {TARGET} %")
