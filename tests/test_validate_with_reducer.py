"""Training-free use: `videotok validate --ckpt_path FULL_TOKEN.ckpt --reducer NAME` runs the named
reducer. Lightning replaces the model options by the checkpoint's hyperparameters (reducer
`none`), so without the override the reducer would be silently dropped."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers_training import last_metrics, tiny_args
from videotok.cli import main
from videotok.config import expand_configs
from videotok.train.lightning_cli import VideoTokCLI

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


def test_reducer_flags_are_arguments_of_the_lightning_cli(synthetic_data_dir: Path, tmp_path: Path):
    """Parsed by LightningCLI's own parser (listed in --help), turned into the model's reducer once."""
    args = [*tiny_args(synthetic_data_dir, tmp_path), "--reducer", "configs/reducer/tome_third.yaml",
            "--reducer-arg", "r=1", "--reducer-arg=layers=1,2"]
    cli = VideoTokCLI(args=expand_configs(args), run=False)
    assert cli.model.hparams.reducer == "tome"
    assert cli.model.hparams.reducer_args == {"r": 1, "scope": "frame", "layers": "1,2"}
    assert cli.model.reducer is cli.model.model.reducer and cli.model.reducer.name == "tome"


def test_reducer_arg_without_reducer_is_one_line_error(capsys, synthetic_data_dir: Path, tmp_path: Path):
    assert main(["validate", *tiny_args(synthetic_data_dir, tmp_path), "--reducer-arg", "r=4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--reducer-arg needs --reducer NAME" in err
