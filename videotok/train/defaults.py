"""The callbacks and loggers every videotok training run has, whoever starts it (the LightningCLI
of `videotok fit`, or `videotok compare`)."""
from __future__ import annotations

from pathlib import Path

from typing import Any, Iterable, Optional

from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from videotok.train.callbacks import RunCheckpoint, StopTogetherOnSigterm


def default_callbacks() -> list[Callback]:
    """Always present: the best checkpoint (val/clip_top1), `last.ckpt` rewritten at every epoch
    end and when SIGTERM stops the run (what `--ckpt_path last` resumes), the learning rate
    logged, and, under DDP, a SIGTERM that stops every process at the same step.

    `last.ckpt` has its own callback: Lightning refreshes a monitored callback's `save_last` only
    when that callback also saved a top-k file, so after an epoch that did not improve the
    metric, `last.ckpt` would still hold an older epoch and a resumed run would repeat epochs.
    """
    return [
        RunCheckpoint(monitor="val/clip_top1", mode="max", save_top_k=1, save_last=False),
        RunCheckpoint(filename="last", save_top_k=1, save_last=False, enable_version_counter=False,
                      save_on_sigterm=True),
        LearningRateMonitor(logging_interval="step"),
        StopTogetherOnSigterm(),
    ]


def progress_bar(enabled: Any, callbacks: Optional[Iterable[Any]] = ()) -> list[Callback]:
    """[TQDM's bar] when the trainer shows one and none was chosen: Lightning takes Rich's bar
    whenever `rich` is installed (transformers brings it), and Rich's bar writes nothing to a log
    file or a pipe, where long runs are watched."""
    if enabled is False or any(isinstance(c, ProgressBar) for c in callbacks or ()):
        return []
    return [TQDMProgressBar()]


def default_loggers(root: str | Path) -> list[Logger]:
    """CSV logs in `<root>/csv`, TensorBoard logs in `<root>/tensorboard`."""
    return [CSVLogger(str(root), name="csv"), TensorBoardLogger(str(root), name="tensorboard")]
