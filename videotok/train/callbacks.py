"""Callbacks every videotok run uses."""
from __future__ import annotations

import os
from types import FrameType
from typing import Any, Callable, Optional

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that writes to `<default_root_dir>/checkpoints` and always keeps `last.ckpt`.

    Lightning's default folder is inside the logger's `version_N`, which changes on every launch,
    so `--ckpt_path last` would not find the checkpoint of the run that was interrupted.

    `save_on_sigterm`: also write the checkpoint when the run is stopped by SIGTERM (what SLURM
    and other schedulers send before killing a job), mid-epoch, so it resumes from there. Lightning
    raises the stop on every process at the same step, so they all save together; other
    exceptions may stop one process alone, and saving (a collective) would then wait forever.
    """

    def __init__(self, dirpath: str | None = None, save_last: bool = True, save_on_sigterm: bool = False,
                 **kwargs) -> None:
        super().__init__(dirpath=dirpath, save_last=save_last, **kwargs)
        self._dirpath_given = dirpath is not None
        self.save_on_sigterm = save_on_sigterm

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if (self.save_on_sigterm and isinstance(exception, SIGTERMException) and trainer.state.fn == "fit"
                and self._last_global_step_saved != trainer.global_step):
            self._save_checkpoint(trainer, self.format_checkpoint_name(self._monitor_candidates(trainer)))

    def attach(self, trainer: L.Trainer) -> None:
        """Fix the folder from the trainer; must run before `fit(ckpt_path="last")` looks for it."""
        if not self._dirpath_given:
            self.dirpath = os.path.realpath(os.path.join(trainer.default_root_dir, "checkpoints"))

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.attach(trainer)
        super().setup(trainer, pl_module, stage)


class StopTogetherOnSigterm(Callback):
    """Under DDP, SIGTERM stops every process at the same training step.

    Lightning's own handler broadcasts from inside the signal handler and each process also
    checks its own flag between batches and in validation, so a SIGTERM that lands at an epoch
    boundary can leave the processes in different collectives, waiting for each other until the
    process-group timeout. Here the handler only notes the signal (and, on the process that
    launched the others, passes it on); at the start of every training step, which all processes
    run in step, they agree whether any of them got it and, if so, all raise Lightning's
    `SIGTERMException` there (`RunCheckpoint(save_on_sigterm=True)` then saves the step). A
    SIGTERM during validation takes effect at the next training step. One process keeps
    Lightning's handling.
    """

    def __init__(self) -> None:
        self._received = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._received = False
        if trainer.world_size > 1:  # read when Lightning registers its handlers, after setup
            trainer._signal_connector._sigterm_notifier_fn = self._notice(trainer)

    def _notice(self, trainer: L.Trainer) -> Callable[[int, Optional[FrameType]], None]:
        def notice(signum: int, frame: Optional[FrameType]) -> None:
            if not self._received and trainer.strategy.launcher is not None:
                trainer.strategy.launcher.kill(signum)  # the ranks this process started, if any
            self._received = True

        return notice

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        if trainer.world_size > 1 and trainer.strategy.reduce_boolean_decision(self._received, all=False):
            raise SIGTERMException()
