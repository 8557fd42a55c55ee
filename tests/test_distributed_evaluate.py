"""`videotok evaluate` and `compare` on Lightning's engine, through the command line: 2 CPU processes
(gloo) score what 1 does, and a comparison killed mid-pass resumes to the uninterrupted result.

Each 2-process run spawns a second Python (Lightning's subprocess launcher), about 30 s here.
"""
from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest
import yaml

from helpers_training import SMOKE_CONFIG, odd_split_checkpoint, run_videotok, start_videotok

ODD_TEST_VIDEOS = 11  # does not divide by 2 ranks


@pytest.fixture(scope="module")
def trained(synthetic_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A data copy with an odd test split, a 1-epoch checkpoint and an evaluation config for both."""
    trained = odd_split_checkpoint(synthetic_data_dir, tmp_path_factory.mktemp("engine"), ODD_TEST_VIDEOS)
    config = trained["work"] / "config.yaml"
    config.write_text(
        f"bases: [{SMOKE_CONFIG}]\n"
        f"data:\n  data_dir: {trained['data']}\n  num_frames: 4\n  crop_size: 32\n  eval_short_side: 32\n"
        "  train_scale: [32, 40]\n  num_workers: 0\n  batch_size: 4\n"
    )
    return {**trained, "config": config}


def _evaluate(trained: dict, name: str, *devices: str) -> dict:
    output = trained["work"] / f"{name}.json"
    run_videotok(["evaluate", "--config", str(trained["config"]), "--ckpt_path", str(trained["checkpoint"]),
                  "--views", "2x3", "--output", str(output), "--no-progress", "--accelerator", "cpu", *devices],
                 timeout=240)
    assert not Path(f"{output}.parts").exists()  # flushed there as it went, removed once the output was written
    return json.loads(output.read_text())


@pytest.mark.slow  # CI time: 2 processes; the killed-pass test covers 1 vs 2 processes in CI
def test_evaluate_on_two_processes_equals_one(trained: dict):
    one = _evaluate(trained, "one", "--devices", "1")
    two = _evaluate(trained, "two", "--devices", "2", "--strategy", "ddp")
    assert two["timing"]["processes"] == 2 and one["timing"]["processes"] == 1
    assert one["videos_evaluated"] == two["videos_evaluated"] == ODD_TEST_VIDEOS
    # the 95 % intervals too: they are computed from the per-video records, sorted by path, fixed seed
    for key in ("clip_top1", "clip_top5", "video_top1", "video_top5", "views_evaluated", "video_list_sha256",
                "per_class", "unreadable", "gflops_per_view", "clip_top1_low", "clip_top1_high", "video_top1_low",
                "video_top1_high"):
        assert one[key] == two[key], key
    assert one["video_top1_low"] <= one["video_top1"] <= one["video_top1_high"]
    assert [(p["path"], p["classes"]) for p in one["predictions"]] == [(p["path"], p["classes"]) for p in two["predictions"]]
    for a, b in zip(one["predictions"], two["predictions"]):
        assert b["scores"] == pytest.approx(a["scores"], abs=1e-6)


def _compare_config(trained: dict, run_dir: Path, eval_batch_size: int = 2) -> Path:
    config = yaml.safe_load(trained["config"].read_text())
    config["compare"] = {
        "split": "test", "views": [4, 3], "run_dir": str(run_dir), "baseline_checkpoint": str(trained["checkpoint"]),
        "flush_every": 1, "torch_threads": 1,
        "strategies": [{"name": "tome_r1", "reducer": "tome", "reducer_args": {"r": 1, "scope": "global"}},
                       {"name": "evit", "reducer": "evit", "reducer_args": {"keep_rate": 0.7, "layers": "1,3"}},
                       # its eval draw is one per (seed, block, token count): a row whose reducer ran
                       # its training draws would follow the order the videos came in
                       {"name": "random_r1", "reducer": "random", "reducer_args": {"r": 1}}],
    }
    config["data"]["batch_size"] = config["data"]["eval_batch_size"] = eval_batch_size  # 2: many flushes
    path = run_dir.parent / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _rows(run_dir: Path) -> dict[str, dict]:
    return {row["name"]: json.loads((run_dir / row["result_file"]).read_text())
            for row in json.loads((run_dir / "results.json").read_text())["rows"]}


def test_compare_killed_mid_pass_or_run_otherwise_gives_the_uninterrupted_scores(trained: dict):
    whole_dir = trained["work"] / "compare_whole"
    run_videotok(["compare", "--config", str(_compare_config(trained, whole_dir)), "--no-progress"], timeout=240)

    run_dir = trained["work"] / "compare_killed"
    config = _compare_config(trained, run_dir)
    process = start_videotok(["compare", "--config", str(config), "--no-progress"], trained["work"] / "killed.log")
    parts = run_dir / "pass" / "parts"
    deadline = time.monotonic() + 180
    while len(list(parts.glob("*.pt"))) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    flushed = len(list(parts.glob("*.pt")))
    assert 2 <= flushed and not (run_dir / "results.json").exists(), (trained["work"] / "killed.log").read_text()[-3000:]

    resumed = run_videotok(["compare", "--config", str(config), "--no-progress"], timeout=240)
    assert not (run_dir / "pass").exists()  # removed once every row's result was written
    assert "over 2 runs (resumed)" in (run_dir / "report.md").read_text(), resumed.stdout[-2000:]
    whole = _rows(whole_dir)
    assert list(whole) == ["baseline", "tome_r1", "evit", "random_r1"]
    _assert_same_rows(_rows(run_dir), whole, atol=1e-6)
    # the paired figures of a resumed pass are those of the uninterrupted one
    for key in ("mcnemar_p", "delta_video_top1_low", "delta_video_top1_high"):
        assert [r[key] for r in json.loads((run_dir / "results.json").read_text())["rows"]] == \
            [r[key] for r in json.loads((whole_dir / "results.json").read_text())["rows"]], key

    # every video of every row scores alike in batches of 16 views on 2 processes
    other_dir = trained["work"] / "compare_batch16_two"
    run_videotok(["compare", "--config", str(_compare_config(trained, other_dir, eval_batch_size=16)), "--no-progress",
                  "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp"], timeout=240)
    _assert_same_rows(_rows(other_dir), whole, atol=1e-5)


def _assert_same_rows(got: dict[str, dict], whole: dict[str, dict], atol: float) -> None:
    assert list(got) == list(whole)
    for name in whole:
        for key in ("clip_top1", "video_top1", "video_top5", "views_evaluated", "video_list_sha256", "per_class",
                    "clip_top1_low", "clip_top1_high", "video_top1_low", "video_top1_high"):
            assert got[name][key] == whole[name][key], (name, key)
        assert got[name]["gflops_per_view"] == pytest.approx(whole[name]["gflops_per_view"], rel=1e-9)
        pairs = list(zip(got[name]["predictions"], whole[name]["predictions"], strict=True))
        assert [a["path"] for a, _ in pairs] == [b["path"] for _, b in pairs]
        assert [a["classes"] for a, _ in pairs] == [b["classes"] for _, b in pairs], name
        for a, b in pairs:
            assert a["scores"] == pytest.approx(b["scores"], abs=atol), (name, a["path"])


@pytest.mark.slow  # CI time: 2 processes; the killed-pass test covers 1 vs 2 processes in CI
def test_compare_trains_and_evaluates_on_two_processes(trained: dict):
    """The baseline and the fine-tuned row train on the 2 processes (half the steps per epoch), then
    one pass on both scores every row; rank 0 alone writes the report."""
    import torch

    run_dir = trained["work"] / "compare_two"
    config = yaml.safe_load(trained["config"].read_text())
    config["trainer"] = {**config.get("trainer", {}), "max_epochs": 1, "limit_val_batches": 0}
    config["compare"] = {
        "split": "test", "views": [1, 1], "run_dir": str(run_dir), "finetune_epochs": 1, "torch_threads": 1,
        "strategies": [{"name": "tome_r1", "reducer": "tome", "reducer_args": {"r": 1, "scope": "global"}},
                       {"name": "crucial_fused", "reducer": "crucial_merge",
                        "reducer_args": {"keep_rate": 0.7, "layers": "1", "fusion": True}}],
    }
    path = trained["work"] / "compare_two.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_videotok(["compare", "--config", str(path), "--no-progress", "--accelerator", "cpu",
                           "--devices", "2", "--strategy", "ddp"], timeout=400)
    assert result.stdout.count("compare finished") == 1  # one report, by rank 0
    data = json.loads((run_dir / "results.json").read_text())
    assert [row["name"] for row in data["rows"]] == ["baseline", "tome_r1", "crucial_fused"]
    assert data["meta"]["evaluation"]["processes"] == 2 and data["meta"]["videos_evaluated"] == ODD_TEST_VIDEOS
    train_videos = len((trained["data"] / "train.csv").read_text().splitlines())
    for row in ("baseline", "crucial_fused"):
        steps = torch.load(run_dir / row / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["global_step"]
        assert steps == -(-train_videos // (4 * 2)), row  # batch 4 on each of 2 processes


@pytest.mark.slow  # CI time: 2 processes; the killed-pass test covers 1 vs 2 processes in CI
def test_sigterm_flushes_what_the_pass_scored_and_the_rerun_finishes_it(trained: dict):
    """No periodic flush (--flush-every beyond the split): the parts found after SIGTERM are the
    handler's flush; the process exits 143 and the same command then ends the pass."""
    output = trained["work"] / "sigterm.json"
    argv = ["evaluate", "--config", str(trained["config"]), "--ckpt_path", str(trained["checkpoint"]),
            "--views", "40x3", "--batch-size", "2", "--output", str(output), "--flush-every", "1000"]
    log = trained["work"] / "sigterm.log"
    process = start_videotok(argv, log)
    deadline = time.monotonic() + 120
    # the progress bar's count of finished videos: some are scored, most (of 11 x 120 views) are not
    while not re.search(r"videos=[1-9]", log.read_text()) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 143, log.read_text()[-3000:]
    assert "stopped by SIGTERM" in log.read_text() and not output.exists()
    assert list(Path(f"{output}.parts").glob("parts/*.pt"))
    run_videotok([*argv, "--no-progress"], timeout=240)
    result = json.loads(output.read_text())
    assert result["timing"]["runs"] == 2 and result["videos_evaluated"] == ODD_TEST_VIDEOS
