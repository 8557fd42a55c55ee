"""The smoke model learns the synthetic set, with every reducer: validation top-1 above twice chance.

Each case is `videotok fit` on the smoke experiment (tiny TimeSformer, tubelet 2, 8 x 64 x 64),
shortened: a smaller generated set (24 train / 8 val videos per class) and a few epochs. The
reducer settings are the default comparison's rows (videotok/defaults/compare.yaml), trained from
scratch with the reducer in place. The full-length smoke run is the `slow` test at the end.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers_training import SMOKE_CONFIG, last_metrics
from videotok.cli import main
from videotok.compare.settings import load_default_config

NUM_CLASSES = 6
TWICE_CHANCE = 2 / NUM_CLASSES
SHORT_EPOCHS = 6  # 9 steps each at batch 16


@pytest.fixture(scope="module")
def learning_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data_tools.synthetic import generate_synthetic

    return generate_synthetic(tmp_path_factory.mktemp("learning"), train_per_class=24, val_per_class=8,
                              test_per_class=1, seed=0, workers=2)


def _rows() -> list[tuple[str, dict]]:
    """One setting per reducer, as the default comparison runs it."""
    seen: dict[str, dict] = {"none": {}}
    for row in load_default_config()["compare"]["strategies"]:
        seen.setdefault(row["reducer"], row.get("reducer_args") or {})
    return list(seen.items())


def _fit(data_dir: Path, root: Path, epochs: int, reducer: str = "none", args: dict | None = None) -> dict:
    argv = ["fit", "--config", str(SMOKE_CONFIG), "--data.data_dir", str(data_dir),
            "--trainer.max_epochs", str(epochs), "--trainer.check_val_every_n_epoch", str(epochs),
            "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false"]
    if reducer != "none":
        argv += ["--reducer", reducer]
        for key, value in (args or {}).items():
            argv += ["--reducer-arg", f"{key}={value}"]
    assert main(argv) == 0
    return last_metrics(root, "val/")


IN_CI = ("none", "semantic")  # CI time: the baseline and a seed method; every other reducer runs with -m slow


def _cases() -> list:
    return [pytest.param(name, args, id=name, marks=() if name in IN_CI else pytest.mark.slow) for name, args in _rows()]


@pytest.mark.parametrize("reducer, args", _cases())
def test_reducer_learns_the_synthetic_set(learning_data_dir: Path, tmp_path: Path, restore_threads,
                                          reducer: str, args: dict):
    metrics = _fit(learning_data_dir, tmp_path / "run", SHORT_EPOCHS, reducer, args)
    assert metrics["val/videos"] == 8 * NUM_CLASSES
    assert metrics["val/clip_top1"] > TWICE_CHANCE, metrics


@pytest.mark.slow
def test_smoke_experiment_as_documented(tmp_path: Path, monkeypatch, restore_threads):
    """`videotok fit --config configs/experiment/smoke.yaml` from a clean folder: generates the
    set, trains 30 epochs (2 min 47 s on 2 cores, val 0.68) and validates well above twice chance."""
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "--config", str(SMOKE_CONFIG), "--trainer.enable_progress_bar", "false"]) == 0
    metrics = last_metrics(tmp_path / "runs" / "smoke", "val/")
    assert metrics["val/clip_top1"] > TWICE_CHANCE, metrics
