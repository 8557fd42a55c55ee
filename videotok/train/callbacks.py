"""Callbacks every videotok run uses, and TokenMapLogger, which a run may add."""
from __future__ import annotations

import os
import random
from contextlib import contextmanager
from types import FrameType
from typing import Any, Callable, Iterator, Optional

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from lightning.pytorch.utilities import rank_zero_warn
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


@contextmanager
def _random_state_kept(device: torch.device) -> Iterator[None]:
    """Every random generator training draws from (torch CPU and the model's GPU, Python, NumPy)
    is as it was after the block."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


class TokenMapLogger(Callback):
    """Logs the picture `videotok visualize` draws of one validation clip to TensorBoard, every
    `every_n_epochs` training epochs: which original patches each token holds after the chosen
    blocks, and the importance the reducer ranks by.

    video: the clip (default: the first video of the validation list), decoded once as validation
        decodes it (its centre clip and crop).
    blocks: block indices, "2,5,11" (default: up to three blocks that reduce, and the last).
    tag: the TensorBoard image tag.

    It has no effect on training: it runs on the global rank 0 only, on the backbone itself (not a
    DDP wrapper) in eval mode under no_grad, with every random state restored afterwards, and runs
    no collective. Strategies that shard the weights (FSDP, DeepSpeed) would need one in the
    forward pass, so there it logs nothing and warns once; so it does without a TensorBoard logger.
    """

    def __init__(self, every_n_epochs: int = 1, video: Optional[str] = None, blocks: Optional[str] = None,
                 tag: str = "token_map") -> None:
        from videotok.visualize.picture import parse_blocks

        if every_n_epochs < 1:
            raise ValueError(f"TokenMapLogger: every_n_epochs={every_n_epochs}; expected an integer >= 1")
        self.every_n_epochs, self.video, self.tag = every_n_epochs, video, tag
        self.blocks = parse_blocks(blocks, "TokenMapLogger blocks") if blocks is not None else None
        self._clip: Optional[torch.Tensor] = None
        self._normalisation: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
        self._header: list[str] = []
        self._warned = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Options checked before training starts, not at the first picture."""
        from videotok.visualize.tracking import check_blocks

        if self.blocks is not None:
            self.blocks = check_blocks(self.blocks, len(pl_module.model.blocks), "TokenMapLogger blocks")
        if self.video is not None and not os.path.isfile(self.video):
            raise FileNotFoundError(f"TokenMapLogger video={self.video}: no such file")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        logger = next((log for log in trainer.loggers if isinstance(log, TensorBoardLogger)), None)
        if logger is None or not isinstance(trainer.strategy, (SingleDeviceStrategy, DDPStrategy)):
            if not self._warned:
                rank_zero_warn("TokenMapLogger logs nothing: it needs a TensorBoard logger and weights that are not "
                               f"sharded (this run: {type(trainer.strategy).__name__}, loggers "
                               f"{[type(log).__name__ for log in trainer.loggers]})")
                self._warned = True
            return
        logger.experiment.add_image(self.tag, self.picture(trainer, pl_module.model), trainer.global_step,
                                    dataformats="HWC")

    def picture(self, trainer: L.Trainer, model: torch.nn.Module) -> np.ndarray:
        """[H, W, 3] uint8: the picture of the clip through `model` (the backbone) as it is now."""
        from videotok.visualize.picture import caption, token_picture

        device = next(model.parameters()).device
        with _random_state_kept(device), torch.no_grad():
            if self._clip is None:
                self._clip = self._decode(trainer.datamodule)
                self._header, default = caption(model, os.path.basename(self._path(trainer.datamodule)))
                self.blocks = self.blocks or default
            mean, std = self._normalisation
            picture = token_picture(model, self._clip, mean, std, self.blocks,
                                    [*self._header, f"epoch {trainer.current_epoch}, step {trainer.global_step}"])
        return picture.grid()

    def _path(self, datamodule: Any) -> str:
        return self.video or datamodule.video_path("val", 0)

    def _decode(self, datamodule: Any) -> torch.Tensor:
        from videotok.evaluate.predict import centre_view, datamodule_preprocessing

        preprocessing = datamodule_preprocessing(datamodule)
        self._normalisation = (preprocessing.mean, preprocessing.std)
        return centre_view(self._path(datamodule), preprocessing, datamodule.decoder, datamodule.fallback_decoder)
