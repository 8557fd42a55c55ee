"""What `videotok compare` runs: the `compare:` section of a config, checked before any work.

Every strategy row's reducer is bound to the configured backbone (as `create_model` binds it), so
an unknown reducer, an unknown argument or a schedule that does not fit the model fails here,
naming the row, instead of after the baseline has trained for an hour. So do unknown model and
fine-tuning options and a missing baseline checkpoint.
"""
from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import yaml

from videotok.evaluate import AGGREGATES, parse_views
from videotok.evaluate.views import check_views
from videotok.reduce.choice import ReducerChoice
from videotok.settings import resolve_model_settings

BASELINE = "baseline"
DEFAULT_CONFIG = "compare.yaml"  # in videotok/defaults/, shipped with the package
SPLITS = ("val", "test")
# Config keys that change how a run is executed, not what it computes: left out of signatures.
_RUNTIME_KEYS = {
    "data": {"num_workers", "pin_memory", "persistent_workers", "decoder"},
    "trainer": {"accelerator", "devices", "num_nodes", "strategy", "log_every_n_steps",
                "enable_progress_bar", "default_root_dir", "logger", "callbacks", "enable_checkpointing",
                "enable_model_summary"},
}
_COMPARE_KEYS = {"split", "views", "aggregate", "run_dir", "finetune_epochs", "finetune", "strategies",
                 "torch_threads", "seed", "seeds", "baseline_checkpoint", "finetune_published", "flush_every"}
_ROW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Strategy:
    """One row of the comparison: a reducer and its arguments, named for its folder and plot label."""

    name: str
    reducer: str
    reducer_args: dict[str, Any] = field(default_factory=dict)
    adds_parameters: bool = False

    @property
    def setting(self) -> str:
        """`r=16 layers=1,3`, or `-` for the defaults."""
        return " ".join(f"{k}={_scalar(v)}" for k, v in self.reducer_args.items()) or "-"

    @property
    def choice(self) -> ReducerChoice:
        return ReducerChoice(self.reducer, dict(self.reducer_args))

    @property
    def trained(self) -> str:
        if self.reducer == "none":
            return "trained"
        return "fine-tuned" if self.adds_parameters else "training-free"


@dataclass(frozen=True)
class CompareSettings:
    split: str
    views: tuple[int, int]
    aggregate: str
    run_dir: Path
    finetune_epochs: int
    finetune: dict[str, Any]  # model overrides while fine-tuning (e.g. lr, warmup_epochs)
    strategies: tuple[Strategy, ...]
    torch_threads: Optional[int] = None
    seed: int = 0
    baseline_checkpoint: Optional[str] = None  # skip training: a full-token videotok checkpoint
    only: Optional[tuple[str, ...]] = None  # compute only these rows; others are reported if finished
    published: Optional[str] = None  # model.published: the baseline is this published checkpoint, untrained here
    finetune_published: bool = False  # with `published`: fine-tune the reducers that add parameters (else skip them)
    # with `published` of other classes than the data's: the baseline is fine-tuned from it first, with a new head
    published_new_head: bool = False
    visualize: bool = False  # draw the same test clip through every row's model (`--visualize`)
    flush_every: int = 200  # videos per process between flushes of the evaluation pass's results
    seeds: tuple[int, ...] = (0,)  # compare.seeds: the trained rows are trained once per seed (default: compare.seed)
    seed_folder: bool = False  # run_dir is one seed's folder, seed<k>/ under the comparison's (several seeds)

    def for_seed(self, seed: int) -> "CompareSettings":
        """One seed's comparison: with several seeds, its rows live in `<run_dir>/seed<k>/`."""
        if len(self.seeds) == 1:
            return replace(self, seed=seed, seeds=(seed,))
        return replace(self, seed=seed, seeds=(seed,), run_dir=self.run_dir / f"seed{seed}", seed_folder=True)

    def selected(self, strategy: Strategy) -> bool:
        return self.only is None or strategy.name in self.only

    def row_dir(self, name: str) -> Path:
        return self.run_dir / name


def default_config_path() -> Path:
    """The embedded default config (synthetic set, tiny TimeSformer, every strategy)."""
    return Path(str(resources.files("videotok") / "defaults" / DEFAULT_CONFIG))


def load_default_config() -> dict:
    return yaml.safe_load(default_config_path().read_text())


def parse_settings(config: dict, run_dir: Optional[str] = None, only: Optional[list[str]] = None,
                   visualize: bool = False) -> CompareSettings:
    """The checked `compare:` section; `run_dir`, `only` (row names) and `visualize` come from the
    command line."""
    section = config.get("compare")
    if not isinstance(section, dict):
        raise ValueError("the config has no `compare:` section (see videotok/defaults/compare.yaml)")
    unknown = sorted(set(section) - _COMPARE_KEYS)
    if unknown:
        raise ValueError(f"compare: unknown keys {unknown}; known: {', '.join(sorted(_COMPARE_KEYS))}")
    split = section.get("split", "test")
    if split not in SPLITS:
        raise ValueError(f"compare.split: {split!r}; choose one of {', '.join(SPLITS)}")
    aggregate = section.get("aggregate", "softmax")
    if aggregate not in AGGREGATES:
        raise ValueError(f"compare.aggregate: {aggregate!r}; choose one of {', '.join(AGGREGATES)}")
    epochs = section.get("finetune_epochs", 1)
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"compare.finetune_epochs: expected an integer >= 1, got {epochs!r}")
    finetune = section.get("finetune") or {}
    if not isinstance(finetune, dict):
        raise ValueError(f"compare.finetune: expected a mapping of model options, got {finetune!r}")
    threads = section.get("torch_threads")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise ValueError(f"compare.torch_threads: expected an integer >= 1 or null, got {threads!r}")
    _check_model_options(config.get("model") or {}, finetune)
    baseline_checkpoint = section.get("baseline_checkpoint")
    if baseline_checkpoint and not Path(baseline_checkpoint).is_file():
        raise ValueError(f"compare.baseline_checkpoint: {baseline_checkpoint}: no such file")
    published = (config.get("model") or {}).get("published")
    if published and baseline_checkpoint:
        raise ValueError("compare.baseline_checkpoint and model.published both name the baseline's weights: set one")
    finetune_published = section.get("finetune_published", False)
    if not isinstance(finetune_published, bool):
        raise ValueError(f"compare.finetune_published: expected true or false, got {finetune_published!r}")
    flush_every = section.get("flush_every", 200)
    if not isinstance(flush_every, int) or isinstance(flush_every, bool) or flush_every < 1:
        raise ValueError(f"compare.flush_every: expected an integer >= 1 (videos between flushes), got {flush_every!r}")
    seeds = _seeds(section)
    strategies = _parse_strategies(section.get("strategies"))
    if only:
        missing = sorted(set(only) - {s.name for s in strategies})
        if missing:
            names = ", ".join(s.name for s in strategies)
            raise ValueError(f"--only {' '.join(missing)}: no such row; the rows are: {names}")
    return CompareSettings(
        split=split,
        views=_views(section.get("views", (1, 3))),
        aggregate=aggregate,
        run_dir=Path(run_dir or section.get("run_dir") or "runs/compare"),
        finetune_epochs=epochs,
        finetune=dict(finetune),
        strategies=strategies,
        torch_threads=threads,
        seed=seeds[0],
        seeds=seeds,
        baseline_checkpoint=baseline_checkpoint,
        only=tuple(only) if only else None,
        published=str(published) if published else None,
        finetune_published=finetune_published,
        visualize=bool(visualize),
        flush_every=flush_every,
    )


def _seeds(section: dict) -> tuple[int, ...]:
    """compare.seeds (a list of distinct integers), else the one compare.seed (default 0)."""
    seed, seeds = section.get("seed"), section.get("seeds")
    if seeds is None:
        seed = 0 if seed is None else seed
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"compare.seed: expected an integer, got {seed!r}")
        return (seed,)
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ValueError(f"compare.seeds: expected a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"compare.seeds: {seeds} repeats a seed")
    if seed is not None and seed != seeds[0]:
        raise ValueError(f"compare.seed is {seed} and compare.seeds {seeds}: the first of compare.seeds is the "
                         "seed; remove compare.seed or make it the first of compare.seeds")
    return tuple(seeds)


def _check_model_options(model: dict, finetune: dict) -> None:
    """`model:` and `compare.finetune` keys must be VideoClassifier arguments; fine-tuning may
    change the optimisation, not the model or its reducer."""
    from videotok.train.module import VideoClassifier

    known = set(inspect.signature(VideoClassifier.__init__).parameters) - {"self"}
    unknown = sorted(set(model) - known)
    if unknown:
        raise ValueError(f"model: unknown options {unknown}; VideoClassifier takes {', '.join(sorted(known))}")
    fixed = {"model", "num_classes", "num_frames", "img_size", "tubelet_size", "model_args", "reducer",
             "reducer_args", "init_checkpoint", "pretrained"}
    bad = sorted(set(finetune) - (known - fixed))
    if bad:
        raise ValueError(f"compare.finetune: {bad} cannot be set here; it takes the optimisation options "
                         f"{', '.join(sorted(known - fixed))}")


def _views(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        return parse_views(value, "compare.views")
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) for v in value):
        raise ValueError(f"compare.views: expected [clips, crops] or 'CLIPSxCROPS', got {value!r}")
    return check_views(tuple(value), "compare.views")


def _parse_strategies(rows: Any) -> tuple[Strategy, ...]:
    if not isinstance(rows, list) or not rows:
        raise ValueError("compare.strategies: expected a list of {name, reducer, reducer_args}")
    out: list[Strategy] = []
    for i, row in enumerate(rows):
        where = f"compare.strategies[{i}]"
        if not isinstance(row, dict) or "reducer" not in row:
            raise ValueError(f"{where}: expected {{name, reducer, reducer_args}}, got {row!r}")
        extra = sorted(set(row) - {"name", "reducer", "reducer_args"})
        if extra:
            raise ValueError(f"{where}: unknown keys {extra} (a row has name, reducer, reducer_args)")
        args = row.get("reducer_args") or {}
        if not isinstance(args, dict):
            raise ValueError(f"{where}: reducer_args must be a mapping, got {args!r}")
        name = str(row.get("name") or row["reducer"])
        if not _ROW_NAME.match(name) or name == BASELINE:
            raise ValueError(f"{where}: name {name!r} must be a folder name (letters, digits, _ . -) "
                             f"other than {BASELINE!r}")
        if row["reducer"] == "none":
            raise ValueError(f"{where}: reducer none is the baseline, which always runs")
        out.append(Strategy(name, str(row["reducer"]), dict(args)))
    names = [s.name for s in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"compare.strategies: names must be unique; repeated: {', '.join(duplicates)}")
    return tuple(out)


def check_strategies(config: dict, strategies: tuple[Strategy, ...]) -> tuple[Strategy, ...]:
    """Bind every row's reducer to the backbone (errors name the row) and record whether it adds
    parameters: the built instance's flag (crucial_merge sets it from `fusion`, semantic from
    `global_centres`), or parameters found on the bound reducer. The class's flag is not consulted:
    it describes the defaults, and a row's arguments may turn the parameters off.

    Each reducer is bound to the spec the configured backbone would bind it to (computed once,
    without weights): the same check as building the model with it, without a model per row."""
    if (config.get("model") or {}).get("reducer", "none") not in (None, "none"):
        raise ValueError("model.reducer must be none in a compare config: the baseline is the full-token "
                         "model, and the strategies come from compare.strategies")
    spec = resolve_model_settings(config).spec()
    checked = []
    for i, strategy in enumerate(strategies):
        try:
            reducer = strategy.choice.build()
            reducer.bind(spec)
        except (ValueError, TypeError) as error:
            raise ValueError(f"compare.strategies[{i}] ({strategy.name}): {error}") from None
        adds = bool(getattr(reducer, "adds_parameters", False) or any(True for _ in reducer.parameters()))
        checked.append(Strategy(strategy.name, strategy.reducer, strategy.reducer_args, adds))
    return tuple(checked)


def baseline_training(config: dict, settings: CompareSettings) -> dict[str, Any]:
    """What determines the baseline's weights (runtime-only keys left out): a checkpoint made
    under another one cannot be resumed or reused."""
    sections = {key: {k: v for k, v in (config.get(key) or {}).items() if k not in _RUNTIME_KEYS.get(key, ())}
                for key in ("model", "data", "trainer")}
    weights = {"published_files": file_fingerprint(settings.published)} if settings.published else {}
    return _normalised({**sections, "seed": settings.seed, "baseline_checkpoint": settings.baseline_checkpoint,
                        **weights})


def file_fingerprint(source: str) -> list[list[Any]]:
    """(name, bytes, modification time) of a local file or of a folder's files: a published checkpoint
    replaced at the same path makes earlier rows stale. Empty for a hub id (its name is the version)."""
    path = Path(source)
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else []
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def finetune_training(strategy: Strategy, baseline: dict[str, Any], settings: CompareSettings) -> dict[str, Any]:
    """What determines a fine-tuned row's weights: the baseline's, the reducer and the budget."""
    return _normalised({"reducer": strategy.reducer, "reducer_args": strategy.reducer_args,
                        "baseline": baseline, "epochs": settings.finetune_epochs,
                        "model": settings.finetune, "seed": settings.seed})


def result_signature(strategy: Optional[Strategy], training: dict[str, Any], settings: CompareSettings) -> dict[str, Any]:
    """What determines a row's numbers: its weights' signature, its reducer and the evaluation."""
    reducer = ("none", {}) if strategy is None else (strategy.reducer, strategy.reducer_args)
    return _normalised({"training": training, "reducer": reducer[0], "reducer_args": reducer[1],
                        "evaluation": {"split": settings.split, "views": list(settings.views),
                                       "aggregate": settings.aggregate}})


def _normalised(value: Any) -> Any:
    """As it reads back from JSON (tuples become lists), so stored and new signatures compare equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _scalar(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
