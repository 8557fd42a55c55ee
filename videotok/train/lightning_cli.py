"""The LightningCLI behind `videotok fit|validate|test`: fixed module and data classes, linked
shapes, and the defaults every run needs (checkpoints that resume, CSV + TensorBoard logs)."""
from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from typing import Any, Optional

import torch
from lightning.pytorch.cli import LightningCLI

from videotok.data import KineticsDataModule
from videotok.reduce.choice import ReducerChoice, add_reducer_arguments
from videotok.settings import DATA_LINKS
from videotok.train.callbacks import RunCheckpoint
from videotok.train.defaults import default_callbacks, default_loggers, progress_bar
from videotok.train.module import VideoClassifier

DEFAULT_ROOT_DIR = "runs/default"
PROCESS_GROUP_TIMEOUT_S = 600


def _num_classes(datamodule: KineticsDataModule) -> int:
    return datamodule.num_classes


class VideoTokCLI(LightningCLI):
    """`--reducer NAME|PRESET --reducer-arg k=v ...` are arguments of every subcommand; the reducer
    they name becomes the model's `reducer` / `reducer_args` just before the classes are built.
    With `--ckpt_path FILE`, Lightning has replaced the model options by the checkpoint's
    hyperparameters (the architecture it was trained with), reducer included by then; a reducer
    named with `--reducer` still wins, or a full-token checkpoint could not be validated
    training-free with a reducer (it would silently run without one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("trainer_defaults", {"default_root_dir": DEFAULT_ROOT_DIR, "callbacks": default_callbacks()})
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(VideoClassifier, KineticsDataModule, *args, **kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        # The data decides the clip shape and the classes; the model must match them.
        for source, target in DATA_LINKS.items():
            parser.link_arguments(f"data.{source}", f"model.{target}")
        parser.link_arguments("data", "model.num_classes", compute_fn=_num_classes, apply_on="instantiate")
        parser.add_argument(
            "--torch_threads", type=Optional[int], default=None,
            help="intra-op CPU threads (torch.set_num_threads); on a small CPU, 1 leaves the other "
            "cores to the data workers and trains several times faster than the default",
        )
        parser.add_argument(
            "--process_group_timeout", type=float, default=PROCESS_GROUP_TIMEOUT_S,
            help="seconds a process waits for the others in one collective before the run fails "
            "(DDP, FSDP): a stuck or dead process then stops the run instead of hanging it",
        )
        add_reducer_arguments(parser)

    def before_instantiate_classes(self) -> None:
        # Runs after Lightning applied the checkpoint's hyperparameters (LightningCLI._parse_ckpt_path).
        choice = ReducerChoice.from_flags(self._get(self.config, "reducer"), self._get(self.config, "reducer_arg"))
        if choice is not None:
            model = self._get(self.config, "model")
            model["reducer"], model["reducer_args"] = choice.name, dict(choice.args)
        threads = self._get(self.config, "torch_threads")
        if threads is not None:
            if threads < 1:
                raise ValueError(f"--torch_threads: expected an integer >= 1, got {threads}")
            torch.set_num_threads(threads)
        seconds = self._get(self.config, "process_group_timeout")
        if seconds is None or seconds <= 0:
            raise ValueError(f"--process_group_timeout: expected seconds > 0, got {seconds}")

    def instantiate_trainer(self, **kwargs: Any):
        config = self._get(self.config_init, "trainer", default={})
        chosen = config.get("callbacks")
        chosen = chosen if isinstance(chosen, list) else [chosen]
        self.trainer_defaults["callbacks"] = default_callbacks() + progress_bar(
            config.get("enable_progress_bar"), chosen)
        if config.get("logger") in (None, True) and "logger" not in kwargs:
            # CSV and TensorBoard under default_root_dir unless the config chose loggers.
            root = config.get("default_root_dir") or DEFAULT_ROOT_DIR
            kwargs["logger"] = default_loggers(root)
        trainer = super().instantiate_trainer(**kwargs)
        self._set_process_group_timeout(trainer, config.get("strategy"))
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, RunCheckpoint):
                callback.attach(trainer)
        os.makedirs(trainer.default_root_dir, exist_ok=True)
        return trainer

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        finally:
            self._wait_for_started_ranks()

    def _wait_for_started_ranks(self, grace_s: float = 60) -> None:
        """The process that started the other ranks (Lightning's DDP launcher) lets them finish
        (their own error line, teardown) before it exits: they die with it (see
        `videotok.cli._prepare_process`)."""
        launcher = self.trainer.strategy.launcher if hasattr(self, "trainer") else None
        for process in getattr(launcher, "procs", ()):  # only Lightning's subprocess launcher has them
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                pass

    def _set_process_group_timeout(self, trainer, configured_strategy: Any) -> None:
        """Apply `--process_group_timeout` to a strategy named by string (a strategy given as
        `class_path`/`init_args` keeps its own `timeout`; the value was checked before any class
        was built)."""
        seconds = self._get(self.config, "process_group_timeout")
        if isinstance(configured_strategy, (str, type(None))) and hasattr(trainer.strategy, "_timeout"):
            trainer.strategy._timeout = timedelta(seconds=seconds)  # read when the process group starts
