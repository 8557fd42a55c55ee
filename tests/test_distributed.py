"""Lightning DDP on 2 CPU processes (gloo) evaluates the same videos and gets the same metrics as
one process: the data module shards each split across ranks without padding, and torchmetrics
reduces the per-rank sums at epoch end.

One checkpoint is trained with one process, then validated/tested with 1 and 2 processes. Each
2-process run spawns a second Python (Lightning's subprocess launcher) and takes ~30 s here.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers_training import copy_dataset, last_metrics, odd_split_checkpoint, run_videotok, tiny_args

ODD_TEST_VIDEOS = 11  # does not divide by 2 ranks: one rank gets 6 videos, the other 5


@pytest.fixture(scope="module")
def trained(synthetic_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A data copy whose test split has an odd number of videos, and a 1-epoch checkpoint."""
    return odd_split_checkpoint(synthetic_data_dir, tmp_path_factory.mktemp("ddp"), ODD_TEST_VIDEOS)


def _evaluate(trained: dict, command: str, devices: int) -> dict[str, float]:
    root = trained["work"] / f"{command}_{devices}"
    argv = [command, *tiny_args(trained["data"], root), "--ckpt_path", str(trained["checkpoint"]),
            "--trainer.accelerator", "cpu", "--trainer.devices", str(devices)]
    if devices > 1:
        argv += ["--trainer.strategy", "ddp"]
    run_videotok(argv)
    return last_metrics(root, f"{'val' if command == 'validate' else 'test'}/")


def _assert_same(one: dict[str, float], two: dict[str, float], stage: str, videos: int) -> None:
    assert one[f"{stage}/videos"] == two[f"{stage}/videos"] == videos
    assert one[f"{stage}/skipped_videos"] == two[f"{stage}/skipped_videos"] == 0
    assert one[f"{stage}/clip_top1"] == pytest.approx(two[f"{stage}/clip_top1"], abs=1e-6)
    assert one[f"{stage}/clip_top5"] == pytest.approx(two[f"{stage}/clip_top5"], abs=1e-6)
    assert one[f"{stage}/loss"] == pytest.approx(two[f"{stage}/loss"], abs=1e-5)


@pytest.mark.slow  # CI time: 2 processes; the killed-pass test of test_distributed_evaluate runs 2 in CI
def test_validate_on_two_processes_equals_one(trained: dict):
    one, two = _evaluate(trained, "validate", 1), _evaluate(trained, "validate", 2)
    _assert_same(one, two, "val", videos=12)


def test_odd_video_count_is_neither_dropped_nor_duplicated_on_two_processes(trained: dict):
    # test_views 2x3 in the smoke config: 6 views per video, views of a video stay on one rank.
    one, two = _evaluate(trained, "test", 1), _evaluate(trained, "test", 2)
    _assert_same(one, two, "test", videos=ODD_TEST_VIDEOS)


@pytest.mark.slow  # CI time: 2 processes; the killed-pass test of test_distributed_evaluate runs 2 in CI
def test_too_many_broken_videos_stop_every_process_together(synthetic_data_dir: Path, tmp_path: Path):
    """4 of 24 training videos empty (17 %, limit 5 %), 2 processes: the counts are summed over
    both at every training step, so both stop at the same step, as soon as the limit is certainly
    exceeded (2 failures: 2 of 26 tries > 5 %), with the same one-line error, and neither waits for
    the other in a collective (a hang would fail on run_videotok's timeout)."""
    data = copy_dataset(synthetic_data_dir, tmp_path / "data")
    rows = (data / "train.csv").read_text().splitlines()
    for line in rows[::6]:  # one video per class
        (data / line.rsplit(" ", 1)[0]).write_bytes(b"")
    root = tmp_path / "run"
    result = run_videotok(["fit", *tiny_args(data, root), "--trainer.devices", "2", "--trainer.strategy", "ddp",
                           "--data.max_failure_rate", "0.05"], timeout=240, check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("videotok fit: error: ")]
    assert result.returncode == 1, result.stderr[-3000:]
    assert len(errors) == 2, result.stderr[-3000:]  # one per process, the same totals
    assert len({line.split(": ", 3)[3].split(" (")[0] for line in errors}) == 1
    failed, attempted = re.search(r"train data: (\d+) of (\d+) videos failed to load over 2 processes",
                                  errors[0]).groups()
    assert 2 <= int(failed) <= 4 and int(failed) / (24 + int(failed)) > 0.05
    assert not (root / "checkpoints" / "last.ckpt").exists()  # stopped within the first epoch
    assert "data.max_failure_rate=0.05" in errors[0]
