"""The comparison itself: train the full-token baseline once, then score every strategy the same way.

Reducers without parameters run training-free on the baseline checkpoint; reducers that add
parameters are fine-tuned from it (`init_checkpoint`) for the same number of epochs each. With
`model.published` the baseline is that published checkpoint, evaluated as it is (no training);
reducers that add parameters are then fine-tuned from it only with `compare.finetune_published`,
else they are listed as skipped.

All training comes first; then one evaluation pass decodes each clip once for every row still
without a result (videotok.evaluate.engine), on the devices, nodes and strategy of the trainer
options. The pass flushes per-video results to `<run_dir>/pass/` as it goes, so an interrupted
pass resumes where it stopped; once it ends, every row is written to `<run_dir>/<row>/result.json`
and the pass folder is removed. A rerun loads finished rows, resumes an interrupted training from
its `last.ckpt`, and recomputes only what is missing. Each row folder also keeps `training.json`,
what its weights depend on: a rerun whose config would produce other weights stops with an error
instead of mixing the two. In a multi-process run every process walks the same steps; rank 0
alone writes files and the report.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, replace
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
from videotok.evaluate import EvalRow, EvaluationResult, PassOutcome, Runtime, pass_results, run_pass
from videotok.evaluate.engine import EVAL_SPLITS
from videotok.evaluate.pass_store import PassStore
from videotok.reduce.choice import ReducerChoice
from videotok.train.build import build_classifier, build_datamodule, published_restriction
from videotok.train.callbacks import RunCheckpoint
from videotok.train.checkpoint import load_checkpoint
from videotok.train.defaults import default_callbacks, default_loggers, progress_bar

RESULT_FILE = "result.json"
TRAINING_FILE = "training.json"
PASS_DIR = "pass"  # the evaluation pass's per-video results while it runs
Log = Callable[[str], None]


@dataclass(frozen=True)
class RowResult:
    """A finished row: its strategy (None for the baseline) and its evaluation."""

    name: str
    strategy: Optional[Strategy]
    result: EvaluationResult  # the first seed's (compare.seeds)
    loaded: bool  # read back from an earlier run rather than computed now
    other_seeds: tuple[EvaluationResult, ...] = ()  # the further seeds' results, in compare.seeds order

    @property
    def results(self) -> tuple[EvaluationResult, ...]:
        """One result per seed."""
        return (self.result, *self.other_seeds)

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


@dataclass(frozen=True)
class Plan:
    """The rows of one seed's comparison: all reported (baseline first), those loaded, those to compute."""

    rows: list[tuple[str, Optional[Strategy]]]
    loaded: dict[str, EvaluationResult]
    todo: list[tuple[str, Optional[Strategy]]]


def one_pass(comparison: "Comparison", rows: list[EvalRow], signatures: dict[str, dict]) -> Optional[PassOutcome]:
    """The evaluation pass over `comparison`'s split for `rows` (of one seed or several), resumable in
    `<run_dir>/pass/` under `signatures` (row name -> what determines its numbers)."""
    settings = comparison.settings
    root = settings.run_dir.parent if settings.seed_folder else settings.run_dir
    return run_pass(rows, comparison.datamodule, settings.split, settings.views, settings.aggregate,
                    comparison.runtime, comparison.progress, store=PassStore(root / PASS_DIR),
                    signature={"rows": signatures}, flush_every=settings.flush_every,
                    description=f"compare: {len(rows)} rows")


def machine_description(device: str) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = f"{cores} CPU cores, {torch.get_num_threads()} torch threads" if cores else "CPU"
    gpu = f", {torch.cuda.get_device_name(0)}" if "cuda" in device and torch.cuda.is_available() else ""
    return f"{platform.node()} ({platform.system()} {platform.machine()}, {cpu}{gpu}), device {device}"


def is_rank_zero() -> bool:
    """Whether this process writes the run's files: rank 0, or a process not launched by Lightning."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return all(os.environ.get(key, "0") == "0" for key in ("RANK", "LOCAL_RANK", "NODE_RANK"))


class Comparison:
    """Runs the rows of `settings` on `config`; `run()` returns the finished rows, baseline first (on
    rank 0; the other ranks of a multi-device run return an empty list).

    Training runs first (the baseline, then each reducer with parameters), then one evaluation pass
    scores every row that has no result yet on the same decoded clips (videotok.evaluate.engine)."""

    def __init__(self, config: dict, settings: CompareSettings, runtime: Optional[Runtime] = None,
                 progress: bool = True, log: Log = print) -> None:
        self.config, self.settings, self.progress, self.log = config, settings, progress, log
        self.runtime = runtime or Runtime.from_options(config.get("trainer"))
        self.baseline_training = baseline_training(config, settings)
        self._datamodule = None
        self.skipped: list[tuple[str, str]] = []  # (row, why) of rows left out of this run's report
        self.outcome: Optional[PassOutcome] = None  # the evaluation pass of this run, if one ran

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
        if self.settings.visualize and rows:
            self._draw(rows)
        return rows

    def _rows(self) -> list[RowResult]:
        """Loaded rows stay as they are; the others are trained if they must be, then scored together."""
        plan = self._plan()
        computed: dict[str, EvaluationResult] = {}
        if not plan.todo and is_rank_zero():
            PassStore(self.settings.run_dir / PASS_DIR).remove()  # left by a run stopped after saving its rows
        if plan.todo:
            self._train(plan.todo)
            computed = self._evaluate(plan.todo)
            if not is_rank_zero():
                return []
        return self._finished(plan, computed)

    def _plan(self) -> "Plan":
        """Which rows are reported, which of them are loaded from an earlier run, which computed now."""
        rows: list[tuple[str, Optional[Strategy]]] = [(BASELINE, None)]
        loaded: dict[str, EvaluationResult] = {}
        for n, strategy in enumerate(self.settings.strategies, start=2):
            if self.settings.selected(strategy) and not self._trains(strategy):
                why = "adds parameters; on a published checkpoint it is fine-tuned only with compare.finetune_published: true"
                self._announce(n, strategy.name, f"skipped: {why}")
                self.skipped.append((strategy.name, why))
            elif self.settings.selected(strategy):
                rows.append((strategy.name, strategy))
            else:
                result = self._load(strategy.name, self._signature(strategy))
                self._announce(n, strategy.name, "not selected by --only" + ("; its earlier result is reported" if result else ""))
                if result is not None:
                    rows.append((strategy.name, strategy))
                    loaded[strategy.name] = result
        for name, strategy in rows:
            if name in loaded:
                continue
            result = self._load(name, self._signature(strategy))
            if result is not None:
                self._announce(self._number(name), name, f"done earlier, loaded {self.settings.row_dir(name) / RESULT_FILE}")
                loaded[name] = result
        return Plan(rows, loaded, [(name, strategy) for name, strategy in rows if name not in loaded])

    def _train(self, todo: list[tuple[str, Optional[Strategy]]]) -> None:
        """The baseline, then every row of `todo` that adds parameters (each skipped if trained earlier)."""
        self._train_baseline()
        for _, strategy in todo:
            if strategy is not None and strategy.adds_parameters:
                self._finetune(strategy)

    def _finished(self, plan: "Plan", computed: dict[str, EvaluationResult]) -> list[RowResult]:
        """Every row of the plan: the computed ones saved to their folders, the others as loaded."""
        rows = []
        for name, strategy in plan.rows:
            if name in computed:
                rows.append(self._save(name, strategy, computed[name]))
            else:
                rows.append(RowResult(name, strategy, plan.loaded[name], loaded=True))
        return rows

    def _trains(self, strategy: Strategy) -> bool:
        """Whether this run may compute the row (on a published checkpoint, training must be asked for)."""
        return not (strategy.adds_parameters and self.settings.published and not self.settings.finetune_published)

    def _training(self, strategy: Optional[Strategy]) -> dict:
        if strategy is not None and strategy.adds_parameters:
            return finetune_training(strategy, self.baseline_training, self.settings)
        return self.baseline_training

    def _signature(self, strategy: Optional[Strategy]) -> dict:
        return result_signature(strategy, self._training(strategy), self.settings)

    def total(self) -> int:
        return 1 + len(self.settings.strategies)

    def _number(self, name: str) -> int:
        names = [BASELINE] + [s.name for s in self.settings.strategies]
        return names.index(name) + 1

    def _announce(self, n: int, name: str, what: str) -> None:
        self._say(f"[{n}/{self.total()}] {name}: {what}")

    def _say(self, line: str) -> None:
        if is_rank_zero():
            self.log(line)

    def _train_baseline(self) -> None:
        """The baseline's weights: the published checkpoint, the given one, or trained here."""
        if self.settings.published_new_head:
            epochs = self.settings.finetune_epochs
            self._train_row(1, BASELINE, self.baseline_training, epochs,
                            f"fine-tuning the published checkpoint on the data's classes (a new head, {epochs} epoch(s))",
                            lambda: build_classifier(self.config, self.datamodule, new_head=True, **self.settings.finetune))
        elif self.settings.published:
            self._announce(1, BASELINE, f"the published checkpoint {self.settings.published}, as it is (no training)")
        elif self.settings.baseline_checkpoint:
            self._announce(1, BASELINE, f"using the given checkpoint {self.settings.baseline_checkpoint}")
        else:
            epochs = (self.config.get("trainer") or {}).get("max_epochs")
            self._train_row(1, BASELINE, self.baseline_training, epochs,
                            f"training the full-token model ({epochs} epochs)",
                            lambda: build_classifier(self.config, self.datamodule))

    def baseline_checkpoint_path(self) -> Optional[Path]:
        """The baseline's videotok checkpoint; None when its weights are model.published's."""
        if self.settings.published and not self.settings.published_new_head:
            return None
        if self.settings.baseline_checkpoint:
            return Path(self.settings.baseline_checkpoint)
        return last_checkpoint(self.settings.row_dir(BASELINE))

    def _finetune(self, strategy: Strategy) -> None:
        label = f"{strategy.reducer} {strategy.setting}"
        baseline = self.baseline_checkpoint_path()
        epochs = self.settings.finetune_epochs
        start = {"pretrained": None} if baseline is None else {"init_checkpoint": str(baseline), "pretrained": None}
        self._train_row(
            self._number(strategy.name), strategy.name, self._training(strategy), epochs,
            f"{label} adds parameters: fine-tuning {epochs} epoch(s) from the baseline",
            lambda: build_classifier(self.config, self.datamodule, strategy.choice,
                                     new_head=self.settings.published_new_head, **{**self.settings.finetune, **start}),
        )

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
        L.seed_everything(self.settings.seed, workers=True, verbose=False)
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
            self._say(f"    resuming from {last}")
        trainer.fit(classifier, datamodule=self.datamodule, ckpt_path=str(last) if last.is_file() else None)
        if not last.is_file():
            raise RuntimeError(f"training in {root} ended without writing {last}")

    def _trainer_kwargs(self, root: Path, epochs: Optional[int]) -> dict[str, Any]:
        """The config's trainer on this run's devices (`--devices` and co. override the config's), our
        callbacks and logs."""
        kwargs = dict(self.config.get("trainer") or {})
        for key in ("callbacks", "logger", "default_root_dir"):
            kwargs.pop(key, None)
        kwargs.update(self.runtime.trainer_options())
        kwargs.update(
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

    def _weights(self, strategy: Optional[Strategy]) -> Optional[Path]:
        """The checkpoint a row is evaluated on (None: model.published's weights)."""
        if strategy is not None and strategy.adds_parameters:
            return last_checkpoint(self.settings.row_dir(strategy.name))
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
            self._say(f"pictures: not drawn, {error}")
            return
        for row in missing:
            path = self.settings.row_dir(row.name) / PICTURE_FILE
            classifier = self._classifier(row.strategy, self._weights(row.strategy)).eval()
            draw_row(classifier.model, clip, video, self.datamodule, path)
            self.log(f"    {row.name}: tokens of {Path(video).name} -> {path}")

    def _pass_rows(self, todo: list[tuple[str, Optional[Strategy]]]) -> list[EvalRow]:
        """The pass's models: one baseline classifier serves the baseline and every training-free
        row (each with its own reducer bound to it); fine-tuned rows bring their own weights."""
        shared = self._classifier(None, self.baseline_checkpoint_path())
        rows = []
        for name, strategy in todo:
            if strategy is None:
                rows.append(EvalRow(name, shared))
            elif strategy.adds_parameters:
                rows.append(EvalRow(name, self._classifier(strategy, self._weights(strategy))))
            else:
                reducer = strategy.choice.build()
                reducer.bind(shared.model.spec)
                rows.append(EvalRow(name, shared, reducer))
        return rows

    def _evaluate(self, todo: list[tuple[str, Optional[Strategy]]]) -> dict[str, EvaluationResult]:
        """One pass over the split for every row in `todo`; their results on rank 0, {} elsewhere."""
        names = ", ".join(name for name, _ in todo)
        self._say(f"evaluating {len(todo)} row(s) in one pass over the {self.settings.split} split "
                  f"(each clip decoded once): {names}")
        rows = self._pass_rows(todo)
        outcome = one_pass(self, rows, {name: self._signature(strategy) for name, strategy in todo})
        if outcome is None:
            return {}
        return self._results(outcome, todo, rows)

    def _results(self, outcome: PassOutcome, todo: list[tuple[str, Optional[Strategy]]],
                 rows: list[EvalRow]) -> dict[str, EvaluationResult]:
        """The results of `todo`'s rows, `rows` being their pass rows (in order; named as in the pass)."""
        self.outcome = outcome
        settings = self.settings
        machine = machine_description(outcome.device)
        restriction = None if settings.published_new_head else published_restriction(self.config, self.datamodule)
        date = datetime.now(timezone.utc).isoformat(timespec="seconds")
        seed = {"seed": settings.seed, **({"seed_folder": settings.run_dir.name} if settings.seed_folder else {})}
        extras = {
            row.name: {"row": name, "reducer_args": dict(strategy.reducer_args) if strategy else {},
                       "checkpoint": str(self._weights(strategy) or settings.published),
                       "published": settings.published, "published_new_head": settings.published_new_head,
                       "class_restriction": restriction,
                       "signature": self._signature(strategy), "machine": machine,
                       "torch": torch.__version__, "date": date, **seed}
            for row, (name, strategy) in zip(rows, todo)
        }
        results = pass_results(outcome, rows, self.datamodule, settings.split, settings.views, settings.aggregate,
                               self.runtime, extras)
        self._say(f"    one pass: {outcome.wall_seconds:.1f} s wall, {outcome.wait_seconds:.1f} s waiting for "
                  f"decoded clips, {len(outcome.video_list)} videos, {outcome.world_size} process(es)")
        return {name: results[row.name] for row, (name, _) in zip(rows, todo)}

    def finish_pass(self) -> None:
        """Remove the pass folder once every row's result is saved (its records live on there)."""
        if self.outcome is not None:
            PassStore(self.settings.run_dir / PASS_DIR).remove()

    # -- files -------------------------------------------------------------------------------
    def _load(self, name: str, signature: dict) -> Optional[EvaluationResult]:
        """The row's stored result when it was computed with these settings (else it is redone)."""
        path = self.settings.row_dir(name) / RESULT_FILE
        if not path.is_file():
            return None
        result = EvaluationResult.from_json(path.read_text())
        if result.extra.get("signature") != signature:
            self._say(f"    {path} was computed with other settings: recomputing it")
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
        if not is_rank_zero():
            return
        path = self.settings.row_dir(name) / TRAINING_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"finished": finished, "signature": training}, indent=2, sort_keys=True))


class SeededComparison:
    """`compare.seeds` with several seeds: one `Comparison` per seed, its rows in `<run_dir>/seed<k>/`
    (the baseline and every fine-tuned row trained under that seed, the training-free rows on that
    seed's baseline), all trained first, then one evaluation pass over every seed's rows still without
    a result. `run()` returns one RowResult per row, holding every seed's result; a rerun resumes
    each seed's rows as a one-seed comparison resumes its own."""

    def __init__(self, config: dict, settings: CompareSettings, runtime: Optional[Runtime] = None,
                 progress: bool = True, log: Log = print) -> None:
        self.settings, self.log = settings, log
        self.seeds = [Comparison(config, settings.for_seed(seed), runtime, progress,
                                 log=_prefixed(log, f"seed {seed}: ")) for seed in settings.seeds]
        self.outcome: Optional[PassOutcome] = None

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return self.seeds[0].skipped  # the same rows under every seed

    def run(self) -> list[RowResult]:
        for comparison in self.seeds:
            comparison.check_resumable()
        shared = self.seeds[0].datamodule
        for comparison in self.seeds[1:]:
            comparison._datamodule = shared
        plans = [comparison._plan() for comparison in self.seeds]
        computed: list[dict[str, EvaluationResult]] = [{} for _ in self.seeds]
        if not any(plan.todo for plan in plans) and is_rank_zero():
            PassStore(self.settings.run_dir / PASS_DIR).remove()
        if any(plan.todo for plan in plans):
            for comparison, plan in zip(self.seeds, plans):
                if plan.todo:
                    comparison._train(plan.todo)
            computed = self._evaluate(plans)
            if not is_rank_zero():
                return []
        finished = [c._finished(plan, done) for c, plan, done in zip(self.seeds, plans, computed)]
        if self.settings.visualize and finished[0]:
            self.seeds[0]._draw(finished[0])  # the first seed's models
        return self._merge(finished)

    def _evaluate(self, plans: list[Plan]) -> list[dict[str, EvaluationResult]]:
        """One pass for every seed's rows to compute (named `seed<k>/<row>` in the pass)."""
        rows: list[EvalRow] = []
        per_seed: list[list[EvalRow]] = []
        signatures: dict[str, dict] = {}
        for comparison, plan in zip(self.seeds, plans):
            mine = [EvalRow(f"seed{comparison.settings.seed}/{row.name}", row.model, row.reducer)
                    for row in (comparison._pass_rows(plan.todo) if plan.todo else [])]
            signatures.update({row.name: comparison._signature(strategy)
                               for row, (_, strategy) in zip(mine, plan.todo)})
            rows += mine
            per_seed.append(mine)
        if is_rank_zero():
            self.log(f"evaluating {len(rows)} row(s) of {len(self.seeds)} seeds in one pass over the "
                     f"{self.settings.split} split (each clip decoded once)")
        outcome = one_pass(self.seeds[0], rows, signatures)
        if outcome is None:
            return [{} for _ in self.seeds]
        self.outcome = outcome
        return [comparison._results(outcome, plan.todo, mine) if plan.todo else {}
                for comparison, plan, mine in zip(self.seeds, plans, per_seed)]

    def _merge(self, finished: list[list[RowResult]]) -> list[RowResult]:
        """One row per name, its first seed's result and the others'; a row some seed lacks is left out."""
        by_seed = [{row.name: row for row in rows} for rows in finished[1:]]
        merged = []
        for row in finished[0]:
            others = [seed.get(row.name) for seed in by_seed]
            if any(other is None for other in others):
                self.log(f"{row.name}: not finished under every seed ({', '.join(map(str, self.settings.seeds))}): "
                         "left out of the report")
                continue
            merged.append(replace(row, loaded=row.loaded and all(o.loaded for o in others),
                                  other_seeds=tuple(o.result for o in others)))
        return merged

    def finish_pass(self) -> None:
        if self.outcome is not None:
            PassStore(self.settings.run_dir / PASS_DIR).remove()


def _prefixed(log: Log, prefix: str) -> Log:
    return lambda line: log(prefix + line)


def last_checkpoint(row_dir: Path) -> Path:
    path = row_dir / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint (the training of this row did not finish)")
    return path


def elapsed(start: float) -> str:
    seconds = int(time.perf_counter() - start)
    return f"{seconds // 60} min {seconds % 60:02d} s"
