"""`videotok fit` on 2 CPU processes (gloo) the way users run it: progress bar, model summary,
validation every epoch, checkpoints, CSV and TensorBoard logs all on.

- it finishes (a hang fails on the timeout), and each epoch's validation metrics equal those of
  `videotok validate` with one process on that epoch's checkpoint;
- killed with SIGKILL mid-training and resumed with `--ckpt_path last` on 2 processes, it ends with
  the weights of the uninterrupted 2-process run; the second rank dies with the first;
- SIGTERM (what SLURM sends before killing a job) stops every process within a minute, leaves a
  checkpoint of the step it stopped at, and `--ckpt_path last` finishes the run from there.

Tiny set: 24 train videos over 2 ranks, batch 4 -> 3 steps per epoch, 3 epochs -> 9 steps.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from helpers_training import metric_rows, run_videotok, start_videotok, tiny_args

EPOCHS = 3
STEPS_PER_EPOCH = 3
TIMEOUT = 240  # seconds for one 2-process run; a run that hangs fails here


def _argv(data: Path, root: Path) -> list[str]:
    return [
        "fit", *tiny_args(data, root, max_epochs=EPOCHS),
        "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.enable_progress_bar", "true", "--trainer.enable_model_summary", "true",
        "--process_group_timeout", "120",
        # every epoch's weights, to validate them with one process
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        "--trainer.callbacks.dirpath", str(root / "epochs"),
        "--trainer.callbacks.filename", "{epoch}",
        "--trainer.callbacks.save_top_k", "-1",
    ]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "State:\tZ" in status.read_text())


def _start_then_signal(data: Path, work: Path, signum: int) -> tuple[list[str], subprocess.Popen, list[int], Path]:
    """Start a 2-process fit in `work/run`; once its last.ckpt holds the end of the first epoch,
    send `signum` to the launching process. Returns the argv, that process, the pids of the ranks
    it started (read before the signal) and its log."""
    root = work / "run"
    argv = _argv(data, root)
    log = work / f"signal_{signum}.log"
    process = start_videotok(argv, log)
    ranks = _signal_when_checkpointed(process, root / "checkpoints" / "last.ckpt", STEPS_PER_EPOCH, signum, log)
    return argv, process, ranks, log


def _signal_when_checkpointed(process: subprocess.Popen, checkpoint: Path, min_step: int, signum: int,
                              log: Path) -> list[int]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training ended (rc {process.returncode}) before the signal:\n{log.read_text()[-3000:]}")
        if checkpoint.is_file():
            try:
                step = _load(checkpoint)["global_step"]
            except Exception:  # caught while being written: look again
                step = -1
            if step >= min_step:
                ranks = _children(process.pid)
                os.kill(process.pid, signum)
                return ranks
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no checkpoint at step >= {min_step} in {TIMEOUT}s:\n{log.read_text()[-3000:]}")


def _wait_all_gone(pids: list[int], seconds: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not any(_alive(pid) for pid in pids):
            return time.monotonic() - start
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    pytest.fail(f"processes {pids} still running {seconds}s after the signal")


@pytest.fixture(scope="module")
def reference(synthetic_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The uninterrupted 2-process run."""
    root = tmp_path_factory.mktemp("ddp_fit") / "reference"
    result = run_videotok(_argv(synthetic_data_dir, root), timeout=TIMEOUT)
    return {"root": root, "output": result.stdout + result.stderr, "checkpoint": _load(root / "checkpoints" / "last.ckpt")}


def test_fit_on_two_processes_finishes_with_the_defaults_on(reference: dict):
    final = reference["checkpoint"]
    assert final["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert "Epoch 2: 100%" in reference["output"]  # the progress bar ran to the end
    assert (reference["root"] / "tensorboard").is_dir()
    assert sorted(p.name for p in (reference["root"] / "epochs").glob("*.ckpt")) == [
        f"epoch={e}.ckpt" for e in range(EPOCHS)
    ]


@pytest.mark.slow  # CI time: 2 processes; fit on 2 processes runs in CI
def test_each_epochs_validation_equals_validate_with_one_process(reference: dict, synthetic_data_dir: Path,
                                                                  tmp_path: Path):
    root = reference["root"]
    during_fit = {int(float(r["epoch"])): r for r in metric_rows(root) if r.get("val/clip_top1")}
    assert sorted(during_fit) == list(range(EPOCHS))
    for epoch in range(EPOCHS):
        alone = tmp_path / f"validate_{epoch}"
        run_videotok(["validate", *tiny_args(synthetic_data_dir, alone), "--ckpt_path",
                      str(root / "epochs" / f"epoch={epoch}.ckpt")])
        one = {r_key: float(v) for r in metric_rows(alone) for r_key, v in r.items() if r_key.startswith("val/") and v}
        two = during_fit[epoch]
        assert float(two["val/videos"]) == one["val/videos"] == 12, epoch
        for name in ("val/clip_top1", "val/clip_top5"):
            assert float(two[name]) == pytest.approx(one[name], abs=1e-6), (epoch, name)
        assert float(two["val/loss"]) == pytest.approx(one["val/loss"], abs=1e-5), epoch


@pytest.mark.slow  # CI time: 2 processes; fit on 2 processes runs in CI
def test_killed_two_process_run_resumes_to_the_uninterrupted_weights(reference: dict, synthetic_data_dir: Path,
                                                                     tmp_path: Path):
    root = tmp_path / "run"
    argv, process, ranks, _ = _start_then_signal(synthetic_data_dir, tmp_path, signal.SIGKILL)
    process.wait()
    assert ranks, "the launcher started no second rank"
    _wait_all_gone(ranks, 30)  # the second rank ends with its launcher
    interrupted = _load(root / "checkpoints" / "last.ckpt")["global_step"]
    assert STEPS_PER_EPOCH <= interrupted < EPOCHS * STEPS_PER_EPOCH

    run_videotok([*argv, "--ckpt_path", "last"], timeout=TIMEOUT)
    final = _load(root / "checkpoints" / "last.ckpt")
    assert final["global_step"] == EPOCHS * STEPS_PER_EPOCH
    for name, value in reference["checkpoint"]["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.slow  # CI time: 2 processes; fit on 2 processes runs in CI
def test_sigterm_stops_every_process_and_leaves_a_checkpoint_to_resume(synthetic_data_dir: Path, tmp_path: Path):
    root = tmp_path / "run"
    argv, process, ranks, log = _start_then_signal(synthetic_data_dir, tmp_path, signal.SIGTERM)
    took = _wait_all_gone([process.pid, *ranks], 60)
    process.wait()
    output = log.read_text()
    assert process.returncode == 143, output[-3000:]
    assert "videotok fit: stopped by SIGTERM" in output, output[-3000:]
    stopped_at = _load(root / "checkpoints" / "last.ckpt")["global_step"]
    assert STEPS_PER_EPOCH <= stopped_at < EPOCHS * STEPS_PER_EPOCH, took

    run_videotok([*argv, "--ckpt_path", "last"], timeout=TIMEOUT)
    final = _load(root / "checkpoints" / "last.ckpt")
    assert final["global_step"] == EPOCHS * STEPS_PER_EPOCH
