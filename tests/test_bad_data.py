"""A dataset with about 5% broken training videos trains to the end; evaluation names the broken
videos; above `data.max_failure_rate` the run stops with one clear line.

The set: the synthetic generator at 64 px with 96 training videos, 5 of them broken in each way
a Kinetics download breaks (0 bytes, truncated, not a video, wrong extension, missing), plus one
broken test video. Training replaces a broken video by the next readable one of its shard, so the
epoch keeps its 12 steps (batch 8) and tries 96 + 5 videos: 5 / 101 = 5.0% failed per epoch.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import lightning.pytorch  # noqa: F401 - imported here, its log handler binds pytest's stderr, not one test's capture
import pytest
import torch

from helpers_training import SMOKE_CONFIG, metric_rows, run_videotok, tiny_args
from videotok.cli import main

BATCH = 8
TRAIN_VIDEOS = 96
STEPS_PER_EPOCH = TRAIN_VIDEOS // BATCH
EPOCHS = 2
BROKEN_KINDS = ("empty", "truncated", "not_video", "garbage_avi", "missing")


def _rows(csv_path: Path) -> list[list[str]]:
    return [line.rsplit(None, 1) for line in csv_path.read_text().splitlines() if line.strip()]


def _write_rows(csv_path: Path, rows: list[list[str]]) -> None:
    csv_path.write_text("".join(f"{path} {label}\n" for path, label in rows))


def _break(data: Path, rows: list[list[str]], row: int, kind: str) -> str:
    """Break the video of `rows[row]` the way `kind` says; return its path as listed in the CSV."""
    relative = rows[row][0]
    video = data / relative
    content = video.read_bytes()
    if kind == "empty":
        video.write_bytes(b"")
    elif kind == "truncated":
        video.write_bytes(content[: len(content) // 2])  # the index (moov atom) is at the end
    elif kind == "not_video":
        video.write_text("this is not a video\n" * 50)
    elif kind == "garbage_avi":  # bytes no decoder reads, under a video extension
        video.unlink()
        relative = str(Path(relative).with_suffix(".avi"))
        (data / relative).write_bytes(bytes(range(256)) * 64)
        rows[row][0] = relative
    elif kind == "missing":
        video.unlink()
    return relative


@pytest.fixture(scope="module")
def bad_data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The synthetic set with 5 of its 96 training videos and 1 of its 12 test videos broken."""
    from data_tools.synthetic import generate_synthetic

    data = generate_synthetic(tmp_path_factory.mktemp("bad_data") / "data", train_per_class=TRAIN_VIDEOS // 6,
                              val_per_class=2, test_per_class=2, size=64, seed=0, workers=0)
    train = _rows(data / "train.csv")
    assert len(train) == TRAIN_VIDEOS
    broken = [_break(data, train, row, kind) for row, kind in zip((3, 21, 42, 63, 88), BROKEN_KINDS)]
    _write_rows(data / "train.csv", train)
    test = _rows(data / "test.csv")
    broken_test = _break(data, test, 5, "truncated")
    return {"data": data, "broken": broken, "broken_test": broken_test, "test_videos": len(test)}


def _fit_args(data: Path, root: Path, max_failure_rate: float) -> list[str]:
    return ["fit", *tiny_args(data, root, max_epochs=EPOCHS), "--data.batch_size", str(BATCH),
            "--data.max_failure_rate", str(max_failure_rate)]


@pytest.fixture(scope="module")
def trained(bad_data: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`videotok fit` for 2 epochs on the set, limit 10%: 5% broken must not stop it."""
    root = tmp_path_factory.mktemp("bad_data_fit") / "run"
    result = run_videotok(_fit_args(bad_data["data"], root, max_failure_rate=0.1))
    return {"root": root, "stderr": result.stderr}


def test_training_skips_and_counts_the_broken_videos_every_epoch(bad_data: dict, trained: dict):
    checkpoint = torch.load(trained["root"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == EPOCHS * STEPS_PER_EPOCH  # every step ran: failures were replaced
    skipped_per_epoch: dict[int, list[float]] = defaultdict(list)
    for row in metric_rows(trained["root"]):
        if row.get("train/skipped_videos"):
            skipped_per_epoch[int(row["epoch"])].append(float(row["train/skipped_videos"]))
    assert sorted(skipped_per_epoch) == list(range(EPOCHS))
    for epoch, counts in skipped_per_epoch.items():
        assert counts == sorted(counts), epoch  # a running count within the epoch...
        assert counts[-1] == len(BROKEN_KINDS), epoch  # ...that ends at the broken videos, once each
    for relative in bad_data["broken"]:  # each named with its reason, once per epoch
        lines = [line for line in trained["stderr"].splitlines() if line.startswith("skipped ") and relative in line]
        assert len(lines) == EPOCHS, (relative, lines)
    val = {k: float(v) for row in metric_rows(trained["root"]) for k, v in row.items() if k.startswith("val/") and v}
    assert val["val/videos"] == 12 and val["val/skipped_videos"] == 0


def test_fit_console_has_no_ffmpeg_lines_and_no_lightningcli_warning(trained: dict):
    """Issue 13: decoder messages go to the log (the skipped line carries the reason), and
    LightningCLI does not warn about the arguments videotok hands it."""
    stderr = trained["stderr"]
    for noise in ("moov atom", "video_reader.cc", "Invalid data found", "LightningCLI's args", "LeafSpec"):
        lines = [line for line in stderr.splitlines() if noise in line and not line.startswith("skipped ")]
        assert not lines, (noise, lines[:3])


def test_evaluate_names_the_broken_test_video(bad_data: dict, trained: dict, tmp_path: Path, capsys, one_thread):
    data = bad_data["data"]
    config = tmp_path / "config.yaml"
    config.write_text(
        f"bases: [{SMOKE_CONFIG}]\n"
        f"data:\n  data_dir: {data}\n  num_frames: 4\n  crop_size: 32\n  eval_short_side: 32\n"
        "  train_scale: [32, 40]\n  num_workers: 0\n  batch_size: 8\n"
    )
    output = tmp_path / "result.json"
    code = main(["evaluate", "--config", str(config), "--ckpt_path", str(trained["root"] / "checkpoints" / "last.ckpt"),
                 "--views", "1x1", "--output", str(output), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(output.read_text())
    assert [u["path"] for u in result["unreadable"]] == [bad_data["broken_test"]]
    assert "cannot open" in result["unreadable"][0]["reason"]
    assert (result["videos_evaluated"], result["videos_expected"]) == (bad_data["test_videos"] - 1, bad_data["test_videos"])
    assert f"unreadable: {bad_data['broken_test']}" in out
    assert f"{bad_data['test_videos'] - 1} / {bad_data['test_videos']}" in out


def test_more_failures_than_the_limit_stop_the_run_with_one_line(bad_data: dict, tmp_path: Path, capsys, one_thread):
    root = tmp_path / "run"
    code = main(_fit_args(bad_data["data"], root, max_failure_rate=0.02))  # 5% broken > 2%
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert code == 1, err[-3000:]
    assert len(errors) == 1 and errors[0].startswith("videotok fit: error: train data: "), err[-3000:]
    line = errors[0]
    assert "videos failed to load (" in line and "%)" in line  # the fraction
    assert "data.max_failure_rate=0.02 (2.0%)" in line  # the limit and its option
    assert any(relative in line for relative in bad_data["broken"])  # the paths
    assert "Traceback" not in err
    assert not (root / "checkpoints" / "last.ckpt").exists()  # stopped within the first epoch

