"""The comparison itself: train the full-token baseline once, then score every strategy the same way.

Reducers without parameters run training-free on the baseline checkpoint; reducers that add
parameters are fine-tuned from it (`init_checkpoint`) for the same number of epochs each. With
`model.published` the baseline is that published checkpoint, evaluated as it is (no training);
reducers that add parameters are then fine-tuned from it only with `compare.finetune_published`,
else they are listed as skipped. Every row
is written to `<run_dir>/<row>/result.json` as soon as it is finished, so a rerun loads finished
rows, resumes an interrupted training from its `last.ckpt`, and recomputes only what is missing.
Each row folder also keeps `training.json`, what its weights depend on: a rerun whose config would
produce other weights stops with an error instead of mixing the two.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional

import lightning as L
import torch

from videotok.compare.settings import (
    BASELINE,
    CompareSettings,
    Strategy,
    baseline_training,
    finetune_training,
    result_signature,
)
from videotok.compare.pictures import PICTURE_FILE, draw_row, picture_clip
from videotok.evaluate import EvaluationResult, evaluate
from videotok.evaluate.runner import EVAL_SPLITS
from videotok.evaluate.precision import short_precision
from videotok.reduce.choice import ReducerChoice
from videotok.train.build import build_classifier, build_datamodule
from videotok.train.callbacks import RunCheckpoint
from videotok.train.checkpoint import load_checkpoint
from videotok.train.defaults import default_callbacks, default_loggers, progress_bar

RESULT_FILE = "result.json"
TRAINING_FILE = "training.json"
Log = Callable[[str], None]


@dataclass(frozen=True)
class RowResult:
    """A finished row: its strategy (None for the baseline) and its evaluation."""

    name: str
    strategy: Optional[Strategy]
    result: EvaluationResult
    loaded: bool  # read back from an earlier run rather than computed now

    @property
    def reducer(self) -> str:
        return "none" if self.strategy is None else self.strategy.reducer

    @property
    def setting(self) -> str:
        return "full tokens" if self.strategy is None else self.strategy.setting

    @property
    def trained(self) -> str:
        if self.strategy is None:
            if self.result.extra.get("published"):
                return "fine-tuned" if self.result.extra.get("published_new_head") else "published"
            return "trained"
        return self.strategy.trained


def machine_description(device: str) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = f"{cores} CPU cores, {torch.get_num_threads()} torch threads" if cores else "CPU"
    gpu = f", {torch.cuda.get_device_name(0)}" if device.startswith("cuda") and torch.cuda.is_available() else ""
    return f"{platform.node()} ({platform.system()} {platform.machine()}, {cpu}{gpu}), device {device}"


def resolve_device(config: dict, device: Optional[str]) -> str:
    """`--device`, else the trainer's accelerator: cpu stays cpu, anything else is cuda when present."""
    if device:
        try:
            kind = torch.device(device).type
        except RuntimeError:
            raise ValueError(f"--device {device!r}: expected cpu, cuda or cuda:N") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {device}: no CUDA device is available here")
        return device
    accelerator = str((config.get("trainer") or {}).get("accelerator", "auto"))
    if accelerator == "cpu" or not torch.cuda.is_available():
        return "cpu"
    return "cuda"


def eval_precision(config: dict) -> str:
    """The trainer's precision, as evaluation records it ("32", "bf16" or "16")."""
    return short_precision(str((config.get("trainer") or {}).get("precision", "32")), "trainer.precision")


class Comparison:
    """Runs the rows of `settings` on `config`; `run()` returns the finished rows, baseline first."""

    def __init__(self, config: dict, settings: CompareSettings, device: Optional[str] = None,
                 progress: bool = True, log: Log = print) -> None:
        self.config, self.settings, self.progress, self.log = config, settings, progress, log
        self.device = resolve_device(config, device)
        self.precision = eval_precision(config)
        self.baseline_training = baseline_training(config, settings)
        self._datamodule = None
        self.skipped: list[tuple[str, str]] = []  # (row, why) of rows left out of this run's report
        devices = (config.get("trainer") or {}).get("devices", 1)
        if str(devices) not in ("1", "None", "auto"):
            log(f"note: trainer.devices={devices}, but compare trains in this process on one device; "
                "to train the baseline on several, use `videotok fit` and set compare.baseline_checkpoint")

    # -- the plan ----------------------------------------------------------------------------
    def check_resumable(self) -> None:
        """Stop before any work when a row folder holds weights made under other settings."""
        expected = {BASELINE: self.baseline_training}
        for strategy in self.settings.strategies:
            if strategy.adds_parameters and self.settings.selected(strategy) and self._trains(strategy):
                expected[strategy.name] = finetune_training(strategy, self.baseline_training, self.settings)
        stale = []
        for name, training in expected.items():
            stored = self._read_training(name)
            if stored is not None and stored.get("signature") != training:
                stale.append(str(self.settings.row_dir(name)))
        if stale:
            raise ValueError(
                "these row folders hold weights trained with other settings (model, data, trainer, "
                f"seed or fine-tuning): {', '.join(stale)}. Delete them, or pass another --run-dir."
            )

    @property
    def datamodule(self):
        if self._datamodule is None:
            self._datamodule = build_datamodule(self.config)
        return self._datamodule

    # -- the flow ----------------------------------------------------------------------------
    def run(self) -> list[RowResult]:
        self.check_resumable()
        rows = self._rows()
        if self.settings.visualize:
            self._draw(rows)
        return rows

    def _rows(self) -> list[RowResult]:
        rows = [self._baseline(1)]
        for n, strategy in enumerate(self.settings.strategies, start=2):
            if self.settings.selected(strategy) and not self._trains(strategy):
                why = "adds parameters; on a published checkpoint it is fine-tuned only with compare.finetune_published: true"
                self._announce(n, strategy.name, f"skipped: {why}")
                self.skipped.append((strategy.name, why))
                continue
            if self.settings.selected(strategy):
                rows.append(self._strategy(n, strategy))
                continue
            loaded = self._load(strategy.name, self._signature(strategy))
            self._announce(n, strategy.name, "not selected by --only" + ("; its earlier result is reported" if loaded else ""))
            if loaded is not None:
                rows.append(RowResult(strategy.name, strategy, loaded, loaded=True))
        return rows

    def _trains(self, strategy: Strategy) -> bool:
        """Whether this run may compute the row (on a published checkpoint, training must be asked for)."""
        return not (strategy.adds_parameters and self.settings.published and not self.settings.finetune_published)

    def _training(self, strategy: Strategy) -> dict:
        if strategy.adds_parameters:
            return finetune_training(strategy, self.baseline_training, self.settings)
        return self.baseline_training

    def _signature(self, strategy: Strategy) -> dict:
        return result_signature(strategy, self._training(strategy), self.settings)

    def total(self) -> int:
        return 1 + len(self.settings.strategies)

    def _announce(self, n: int, name: str, what: str) -> None:
        self.log(f"[{n}/{self.total()}] {name}: {what}")

    def _baseline(self, n: int) -> RowResult:
        signature = result_signature(None, self.baseline_training, self.settings)
        loaded = self._load(BASELINE, signature)
        if loaded is not None:
            self._announce(n, BASELINE, f"done earlier, loaded {self.settings.row_dir(BASELINE) / RESULT_FILE}")
            return RowResult(BASELINE, None, loaded, loaded=True)
        if self.settings.published_new_head:
            epochs = self.settings.finetune_epochs
            self._train_row(n, BASELINE, self.baseline_training, epochs,
                            f"fine-tuning the published checkpoint on the data's classes (a new head, {epochs} epoch(s))",
                            lambda: build_classifier(self.config, self.datamodule, new_head=True, **self.settings.finetune))
        elif self.settings.published:
            self._announce(n, BASELINE, f"the published checkpoint {self.settings.published}, as it is (no training)")
        elif self.settings.baseline_checkpoint:
            self._announce(n, BASELINE, f"using the given checkpoint {self.settings.baseline_checkpoint}")
        else:
            epochs = (self.config.get("trainer") or {}).get("max_epochs")
            self._train_row(n, BASELINE, self.baseline_training, epochs,
                            f"training the full-token model ({epochs} epochs)",
                            lambda: build_classifier(self.config, self.datamodule))
        self._announce(n, BASELINE, "evaluating")
        checkpoint = self.baseline_checkpoint_path()
        result = self._evaluate(None, checkpoint, signature)
        return self._save(BASELINE, None, result)

    def baseline_checkpoint_path(self) -> Optional[Path]:
        """The baseline's videotok checkpoint; None when its weights are model.published's."""
        if self.settings.published and not self.settings.published_new_head:
            return None
        if self.settings.baseline_checkpoint:
            return Path(self.settings.baseline_checkpoint)
        return last_checkpoint(self.settings.row_dir(BASELINE))

    def _strategy(self, n: int, strategy: Strategy) -> RowResult:
        training, signature = self._training(strategy), self._signature(strategy)
        label = f"{strategy.reducer} {strategy.setting}"
        loaded = self._load(strategy.name, signature)
        if loaded is not None:
            self._announce(n, strategy.name, f"done earlier, loaded {self.settings.row_dir(strategy.name) / RESULT_FILE}")
            return RowResult(strategy.name, strategy, loaded, loaded=True)
        baseline = self.baseline_checkpoint_path()
        if not strategy.adds_parameters:
            self._announce(n, strategy.name, f"{label}, training-free on the baseline checkpoint")
            return self._save(strategy.name, strategy, self._evaluate(strategy, baseline, signature))
        epochs = self.settings.finetune_epochs
        start = {"pretrained": None} if baseline is None else {"init_checkpoint": str(baseline), "pretrained": None}
        self._train_row(
            n, strategy.name, training, epochs,
            f"{label} adds parameters: fine-tuning {epochs} epoch(s) from the baseline",
            lambda: build_classifier(self.config, self.datamodule, strategy.choice,
                                     new_head=self.settings.published_new_head, **{**self.settings.finetune, **start}),
        )
        self._announce(n, strategy.name, "evaluating")
        checkpoint = last_checkpoint(self.settings.row_dir(strategy.name))
        return self._save(strategy.name, strategy, self._evaluate(strategy, checkpoint, signature))

    # -- steps -------------------------------------------------------------------------------
    def _train_row(self, n: int, name: str, training: dict, epochs: Optional[int], what: str,
                   build: Callable[[], L.LightningModule]) -> None:
        """Train a row's weights unless an earlier run finished them (same signature, checked)."""
        root = self.settings.row_dir(name)
        stored = self._read_training(name)
        if stored is not None and stored.get("finished") and (root / "checkpoints" / "last.ckpt").is_file():
            self._announce(n, name, f"trained earlier, using {root / 'checkpoints' / 'last.ckpt'}")
            return
        self._announce(n, name, f"{what} in {root}")
        self._write_training(name, training, finished=False)
        L.seed_everything(self.settings.seed, workers=True)
        self._fit(build(), root, epochs)
        self._write_training(name, training, finished=True)

    def _fit(self, classifier: L.LightningModule, root: Path, epochs: Optional[int]) -> None:
        """Lightning training with the config's trainer settings, resumed from `last.ckpt` if present."""
        trainer = L.Trainer(**self._trainer_kwargs(root, epochs))
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, RunCheckpoint):
                callback.attach(trainer)
        last = root / "checkpoints" / "last.ckpt"
        if last.is_file():
            self.log(f"    resuming from {last}")
        trainer.fit(classifier, datamodule=self.datamodule, ckpt_path=str(last) if last.is_file() else None)
        if not last.is_file():
            raise RuntimeError(f"training in {root} ended without writing {last}")

    def _trainer_kwargs(self, root: Path, epochs: Optional[int]) -> dict[str, Any]:
        """The config's trainer on one device (compare runs in one process), our callbacks and logs."""
        kwargs = dict(self.config.get("trainer") or {})
        for key in ("devices", "num_nodes", "strategy", "callbacks", "logger", "default_root_dir"):
            kwargs.pop(key, None)
        device = torch.device(self.device)
        kwargs.update(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=[device.index] if device.index is not None else 1,
            default_root_dir=str(root), max_epochs=epochs, callbacks=default_callbacks() + progress_bar(self.progress),
            logger=default_loggers(root),
            enable_progress_bar=self.progress, enable_model_summary=False,
        )
        return kwargs

    def _classifier(self, strategy: Optional[Strategy], checkpoint: Optional[Path]) -> L.LightningModule:
        """`strategy`'s model (None: the baseline's) on `checkpoint`'s weights (None: model.published's)."""
        state = load_checkpoint(checkpoint) if checkpoint is not None else None
        reducer = strategy.choice if strategy is not None else ReducerChoice()
        return build_classifier(self.config, self.datamodule, reducer, checkpoint=state, pretrained=None)

    def _weights(self, row: RowResult) -> Optional[Path]:
        """The checkpoint a finished row was evaluated on."""
        if row.strategy is not None and row.strategy.adds_parameters:
            return last_checkpoint(self.settings.row_dir(row.name))
        return self.baseline_checkpoint_path()

    def _draw(self, rows: list[RowResult]) -> None:
        """`--visualize`: one picture per row of the same test clip (rows drawn earlier are kept)."""
        missing = [row for row in rows if not (self.settings.row_dir(row.name) / PICTURE_FILE).is_file()]
        if not missing:
            return
        self.datamodule.setup(EVAL_SPLITS[self.settings.split])
        try:
            video, clip = picture_clip(self.datamodule, self.settings.split)
        except ValueError as error:
            self.log(f"pictures: not drawn, {error}")
            return
        for row in missing:
            path = self.settings.row_dir(row.name) / PICTURE_FILE
            classifier = self._classifier(row.strategy, self._weights(row)).to(self.device).eval()
            draw_row(classifier.model, clip, video, self.datamodule, path)
            self.log(f"    {row.name}: tokens of {Path(video).name} -> {path}")

    def _evaluate(self, strategy: Optional[Strategy], checkpoint: Optional[Path], signature: dict) -> EvaluationResult:
        """`strategy` (None: the baseline) on `checkpoint`'s weights (None: model.published's)."""
        reducer = strategy.choice if strategy is not None else ReducerChoice()
        classifier = self._classifier(strategy, checkpoint)
        return evaluate(
            classifier, self.datamodule, split=self.settings.split, views=self.settings.views,
            aggregate=self.settings.aggregate, device=self.device, progress=self.progress,
            precision=self.precision,
            extra={"row": BASELINE if strategy is None else strategy.name,
                   "reducer_args": dict(reducer.args), "checkpoint": str(checkpoint or self.settings.published),
                   "published": self.settings.published, "published_new_head": self.settings.published_new_head,
                   "signature": signature, "machine": machine_description(self.device),
                   "torch": torch.__version__, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        )

    # -- files -------------------------------------------------------------------------------
    def _load(self, name: str, signature: dict) -> Optional[EvaluationResult]:
        """The row's stored result when it was computed with these settings (else it is redone)."""
        path = self.settings.row_dir(name) / RESULT_FILE
        if not path.is_file():
            return None
        result = EvaluationResult.from_json(path.read_text())
        if result.extra.get("signature") != signature:
            self.log(f"    {path} was computed with other settings: recomputing it")
            return None
        return result

    def _save(self, name: str, strategy: Optional[Strategy], result: EvaluationResult) -> RowResult:
        path = self.settings.row_dir(name) / RESULT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".json.partial")
        partial.write_text(result.to_json())
        partial.replace(path)  # a crash never leaves half a result behind
        (path.parent / PICTURE_FILE).unlink(missing_ok=True)  # drawn from the weights the row had before
        self.log(f"    video top-1 {result.video_top1:.1f} %, {result.gflops_per_view:.4f} GFLOPs per view -> {path}")
        return RowResult(name, strategy, result, loaded=False)

    def _read_training(self, name: str) -> Optional[dict]:
        path = self.settings.row_dir(name) / TRAINING_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def _write_training(self, name: str, training: dict, finished: bool) -> None:
        """What the row's weights depend on, and whether its training ran to the end."""
        path = self.settings.row_dir(name) / TRAINING_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"finished": finished, "signature": training}, indent=2, sort_keys=True))


def last_checkpoint(row_dir: Path) -> Path:
    path = row_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint (the training of this row did not finish)")
    return path


def elapsed(start: float) -> str:
    seconds = int(time.perf_counter() - start)
    return f"{seconds // 60} min {seconds % 60:02d} s"
