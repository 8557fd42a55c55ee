"""Callbacks every videotok run uses."""
from __future__ import annotations

import os

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that writes to `<default_root_dir>/checkpoints` and always keeps `last.ckpt`.

    Lightning's default folder is inside the logger's `version_N`, which changes on every launch,
    so `--ckpt_path last` would not find the checkpoint of the run that was interrupted.
    """

    def __init__(self, dirpath: str | None = None, save_last: bool = True, **kwargs) -> None:
        super().__init__(dirpath=dirpath, save_last=save_last, **kwargs)
        self._dirpath_given = dirpath is not None

    def attach(self, trainer: L.Trainer) -> None:
        """Fix the folder from the trainer; must run before `fit(ckpt_path="last")` looks for it."""
        if not self._dirpath_given:
            self.dirpath = os.path.realpath(os.path.join(trainer.default_root_dir, "checkpoints"))

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.attach(trainer)
        super().setup(trainer, pl_module, stage)
