"""A real `videotok fit` killed with SIGKILL mid-epoch and restarted with `--ckpt_path last`
finishes with the step count, optimiser and scheduler state of an uninterrupted run.

What Lightning does on resume (2.x): it restores the weights, the optimiser and scheduler state
and the loop counters (epoch, global step, batch index within the epoch). Our data state is a
function of (seed, epoch): the shuffle and the augmentation (clip start, scale, crop, flip) are
seeded from them (videotok/data/seeding.py), not drawn from the global RNG, which a checkpoint
does not hold. So a run resumed from an end-of-epoch checkpoint sees exactly the data of the
uninterrupted run and ends with its weights, with the normal random augmentation. Our datasets
are iterable and not resumable within an epoch (no `state_dict`): a checkpoint taken *mid-epoch*
restarts that epoch's data from its first batch and stops after the epoch's remaining number of
batches, so the step count is exact but those batches are the epoch's first ones again
(Lightning warns "not resumable").

Tiny set: 24 train videos, batch 4 -> 6 steps per epoch, 2 epochs -> 12 steps.
"""
from __future__ import annotations

import csv
import os
import signal
import time
from pathlib import Path
from typing import Callable

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from helpers_training import last_metrics, run_videotok, start_videotok, tiny_args
from videotok.data import KineticsDataModule

EPOCHS = 2
STEPS_PER_EPOCH = 6
TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def _optimizer_steps(checkpoint: dict) -> set[int]:
    """AdamW's per-parameter step counters: they restart at 0 if optimiser state is lost."""
    return {int(s["step"]) for s in checkpoint["optimizer_states"][0]["state"].values()}


def _scheduler_steps(checkpoint: dict) -> int:
    return int(checkpoint["lr_schedulers"][0]["last_epoch"])


def _kill_when(process, checkpoint: Path, ready: Callable[[int], bool], log: Path, timeout: float = 240) -> None:
    """SIGKILL `process` as soon as `checkpoint` holds a global step for which `ready` is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training ended (rc {process.returncode}) before it could be killed:\n"
                        f"{log.read_text()[-3000:]}")
        if checkpoint.is_file():
            try:
                step = _load(checkpoint)["global_step"]
            except Exception:  # caught while being written: look again
                step = -1
            if ready(step):
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                assert process.returncode == -signal.SIGKILL
                return
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no checkpoint passed the condition in {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def reference(synthetic_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The uninterrupted run: its final checkpoint and validation metrics."""
    root = tmp_path_factory.mktemp("resume") / "reference"
    run_videotok(["fit", *tiny_args(synthetic_data_dir, root, max_epochs=EPOCHS)])
    return {"checkpoint": _load(root / "checkpoints" / "last.ckpt"), "val": last_metrics(root, "val/")}


def _resume(argv: list[str], root: Path) -> dict:
    run_videotok([*argv, "--ckpt_path", "last"])
    return _load(root / "checkpoints" / "last.ckpt")


def _assert_same_progress(final: dict, reference: dict) -> None:
    assert final["global_step"] == reference["global_step"] == TOTAL_STEPS
    epochs_started = [c["loops"]["fit_loop"]["epoch_progress"]["total"]["started"] for c in (final, reference)]
    assert epochs_started == [EPOCHS, EPOCHS]
    assert _optimizer_steps(final) == _optimizer_steps(reference) == {TOTAL_STEPS}
    assert _scheduler_steps(final) == _scheduler_steps(reference) == TOTAL_STEPS


@pytest.fixture(scope="module")
def epoch_resume(synthetic_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A run SIGKILLed while its second epoch trains (last checkpoint: end of the first), then
    resumed with `--ckpt_path last`."""
    work = tmp_path_factory.mktemp("epoch_resume")
    root = work / "run"
    argv = ["fit", *tiny_args(synthetic_data_dir, root, max_epochs=EPOCHS)]
    log = work / "killed.log"
    process = start_videotok(argv, log)
    _kill_when(process, root / "checkpoints" / "last.ckpt", lambda step: step >= STEPS_PER_EPOCH, log)
    interrupted = _load(root / "checkpoints" / "last.ckpt")
    return {"interrupted": interrupted, "final": _resume(argv, root), "val": last_metrics(root, "val/")}


def test_killed_mid_epoch_resumes_from_the_epoch_checkpoint(epoch_resume: dict, reference: dict):
    interrupted = epoch_resume["interrupted"]
    assert interrupted["global_step"] == STEPS_PER_EPOCH  # last.ckpt is refreshed every epoch
    assert _optimizer_steps(interrupted) == {STEPS_PER_EPOCH}
    _assert_same_progress(epoch_resume["final"], reference["checkpoint"])
    assert epoch_resume["val"]["val/videos"] == reference["val"]["val/videos"] == 12


def test_resume_from_an_epoch_checkpoint_reproduces_the_uninterrupted_weights(epoch_resume: dict, reference: dict):
    """With random augmentation on (smoke config: scale 32-40, random crop, flip, clip start)."""
    final = epoch_resume["final"]
    for name, value in reference["checkpoint"]["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    for name in ("val/clip_top1", "val/loss"):
        assert epoch_resume["val"][name] == pytest.approx(reference["val"][name], abs=1e-5), name


@pytest.mark.slow  # CI time: the epoch-checkpoint resume tests run in CI
def test_killed_after_a_mid_epoch_checkpoint_resumes_with_the_same_step_count(
    synthetic_data_dir: Path, tmp_path: Path, reference: dict,
):
    root = tmp_path / "run"
    argv = [
        "fit", *tiny_args(synthetic_data_dir, root, max_epochs=EPOCHS),
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        "--trainer.callbacks.dirpath", str(root / "step_checkpoints"),
        "--trainer.callbacks.every_n_train_steps", "2",
        "--trainer.callbacks.save_last", "true",
    ]
    log = tmp_path / "killed.log"
    process = start_videotok(argv, log)
    step_last = root / "step_checkpoints" / "last.ckpt"
    _kill_when(process, step_last, lambda step: step >= 2, log)
    interrupted = _load(step_last)
    killed_at = interrupted["global_step"]
    assert 0 < killed_at < TOTAL_STEPS
    assert _optimizer_steps(interrupted) == {killed_at}

    # `last` = the newest last*.ckpt of every checkpoint callback; write nothing newer meanwhile.
    final = _resume(argv, root)
    _assert_same_progress(final, reference["checkpoint"])
    resumed_steps = [int(r["step"]) for r in _rows_with(root, "train/loss_step")]
    assert min(resumed_steps) >= killed_at - 1  # the restarted process logs no step before the checkpoint
    assert max(resumed_steps) == TOTAL_STEPS - 1
    assert last_metrics(root, "val/")["val/videos"] == 12


# -- the data state on resume, in-process --------------------------------------------------------


class _DataRecorder(L.LightningModule):
    """Keeps what every training step was fed; one weight so there is something to optimise."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.fed: dict[int, list[tuple[list[int], torch.Tensor]]] = {}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.fed.setdefault(self.current_epoch, []).append((batch["video_index"].tolist(), batch["video"].clone()))
        return (self.weight * batch["video"].mean()).sum()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pass

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit_recording(data_dir: Path, root: Path, max_epochs: int, validate: bool, ckpt_path=None) -> _DataRecorder:
    """Fit the recorder on the tiny set with random augmentation (scale, crop, flip, clip start)."""
    datamodule = KineticsDataModule(
        str(data_dir), num_frames=4, sampling_rate=2, train_scale=(32, 48), crop_size=32, eval_short_side=32,
        batch_size=4, num_workers=0, horizontal_flip=True, seed=0,
    )
    recorder = _DataRecorder()
    trainer = L.Trainer(
        max_epochs=max_epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=1.0 if validate else 0,
        callbacks=[ModelCheckpoint(dirpath=root, save_last=True)],
    )
    trainer.fit(recorder, datamodule=datamodule, ckpt_path=ckpt_path)
    return recorder


@pytest.mark.parametrize("validate", [True, False], ids=["saved-after-validation", "saved-at-train-epoch-end"])
def test_an_epoch_feeds_the_same_clips_from_the_start_or_after_a_resume(
    synthetic_data_dir: Path, tmp_path: Path, validate: bool,
):
    """Epoch 1's shuffle and augmented clips are those of the uninterrupted run after a resume
    from epoch 0's checkpoint, even with the global RNG elsewhere (the resumed process drew
    nothing for epoch 0). Lightning saves `last.ckpt` after validation when there is one, else
    at the train epoch end; its loop state differs between the two."""
    uninterrupted = _fit_recording(synthetic_data_dir, tmp_path / "a", max_epochs=2, validate=validate).fed
    _fit_recording(synthetic_data_dir, tmp_path / "b", max_epochs=1, validate=validate)
    torch.manual_seed(1234)
    resumed = _fit_recording(synthetic_data_dir, tmp_path / "b", max_epochs=2, validate=validate,
                             ckpt_path=str(tmp_path / "b" / "last.ckpt")).fed
    assert list(resumed) == [1]  # only the second epoch ran
    order = [indices for indices, _ in resumed[1]]
    assert order == [indices for indices, _ in uninterrupted[1]]
    assert order != [indices for indices, _ in uninterrupted[0]]  # epoch 0's shuffle differs
    for (_, clips), (_, reference) in zip(resumed[1], uninterrupted[1]):
        assert torch.equal(clips, reference)


def _rows_with(root: Path, key: str) -> list[dict]:
    """Rows of the resumed run's CSV log (the newest version) that hold `key`."""
    versions = sorted((root / "csv").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    assert len(versions) == 2, "the killed and the resumed run each get a CSV version"
    with open(versions[-1] / "metrics.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get(key)]
