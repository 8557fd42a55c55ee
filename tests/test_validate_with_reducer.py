"""Training-free use: `videotok validate --ckpt_path FULL_TOKEN.ckpt --reducer NAME` runs the named
reducer. Lightning replaces the model options by the checkpoint's hyperparameters (reducer
`none`), so without the override the reducer would be silently dropped."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers_training import last_metrics, tiny_args
from videotok.cli import main
from videotok.config import command_line_reducer

pytestmark = pytest.mark.usefixtures("one_thread")


def _validate(data_dir: Path, root: Path, checkpoint: Path, *extra: str) -> dict[str, float]:
    assert main(["validate", *tiny_args(data_dir, root), "--ckpt_path", str(checkpoint), *extra]) == 0
    return last_metrics(root, "val/")


def test_reducer_named_at_validation_overrides_the_checkpoint(synthetic_data_dir: Path, tmp_path: Path):
    assert main(["fit", *tiny_args(synthetic_data_dir, tmp_path / "fit")]) == 0
    checkpoint = tmp_path / "fit" / "checkpoints" / "last.ckpt"
    full = _validate(synthetic_data_dir, tmp_path / "full", checkpoint)
    again = _validate(synthetic_data_dir, tmp_path / "again", checkpoint)
    pooled = _validate(synthetic_data_dir, tmp_path / "pooled", checkpoint,
                       "--reducer", "pool", "--reducer-arg", "layers=1")
    assert full["val/loss"] == again["val/loss"]  # validation is deterministic ...
    assert pooled["val/loss"] != full["val/loss"]  # ... so a different loss means pool really ran
    assert pooled["val/videos"] == full["val/videos"]


def test_command_line_reducer_reads_the_rewritten_flags():
    argv = ["validate", "--model.reducer", "tome", "--model.reducer_args", '{"r": 8}', "--trainer.devices=1"]
    assert command_line_reducer(argv) == {"reducer": "tome", "reducer_args": {"r": 8}}
    assert command_line_reducer(["validate", "--model.reducer=none"]) == {"reducer": "none"}
    assert command_line_reducer(["validate", "--config", "x.yaml"]) == {}
