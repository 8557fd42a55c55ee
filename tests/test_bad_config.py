"""Bad configurations fail before any work with one line that names the option and what is allowed.

Each case runs `videotok validate` in-process (`videotok.cli.main`) on the tiny smoke settings; a
failure must come back as exit code 2 and a single `videotok <cmd>: error: ...` line, with no
training, no checkpoint and no logs written.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers_training import SMOKE_CONFIG, tiny_args
from videotok.cli import main


pytestmark = pytest.mark.usefixtures("one_thread")


def _fails(capsys, argv: list[str], *expected: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert code == 2, err[-2000:]
    assert len(errors) == 1, err[-2000:]
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def _validate(data_dir: Path, root: Path, *extra: str) -> list[str]:
    return ["validate", *tiny_args(data_dir, root), *extra]


@pytest.mark.parametrize("extra, expected", [
    (["--reducer", "tomee"], ["unknown reducer 'tomee'", "choose one of", "tome", "crucial_merge"]),
    (["--model.model", "nope"], ["unknown model 'nope'", "choose one of", "timesformer_tiny"]),
    (["--reducer", "tome", "--reducer-arg", "bogus=1"], ["'tome' has no argument", "bogus", "its arguments are", "r"]),
    (["--reducer-arg", "r=2"], ["--reducer-arg needs --reducer"]),
    # 4 frames in tubelets of 2 (the smoke model): mode=frames can drop at most 1 of the 2.
    (["--reducer", "cross_frame", "--reducer-arg", "mode=frames", "--reducer-arg", "r=2",
      "--reducer-arg", "layers=1,2"], ["cross_frame", "mode=frames", "at most 1"]),
    # ViViT's factorised encoder runs its spatial blocks per frame: nothing to merge across frames.
    (["--model.model", "vivit_fe_tiny", "--reducer", "cross_frame"], ["cross_frame", "single frame", "factorised"]),
    # 32 px, 4 frames, tubelet 2: 8 patch tokens; a block merges at most half of its tokens, so over
    # 6 blocks r=1 is the most that runs as asked (8 -> 2).
    (["--reducer", "tome", "--reducer-arg", "r=1000"],
     ["reducer 'tome'", "r=1000", "asks block 0 to remove 1000 of the 8 patch tokens", "allowed: r in 0..1"]),
    # evit at blocks 1, 3, 4 must keep at least one token at each.
    (["--reducer", "evit", "--reducer-arg", "keep_rate=0.001"],
     ["reducer 'evit'", "keep_rate=0.001", "keeps 0.008 of the 8 patch tokens", "allowed: keep_rate in [0."]),
    (["--process_group_timeout", "0"], ["--process_group_timeout", "expected seconds > 0, got 0"]),
], ids=["unknown-reducer", "unknown-model", "unknown-reducer-arg", "reducer-arg-without-reducer",
        "schedule-removes-every-frame", "reducer-vs-attention-mode", "tome-schedule-below-one-token",
        "evit-keep-rate-below-one-token", "process-group-timeout-not-positive"])
def test_bad_option_fails_with_one_line(capsys, synthetic_data_dir: Path, tmp_path: Path, extra, expected):
    root = tmp_path / "run"
    _fails(capsys, _validate(synthetic_data_dir, root, *extra), "videotok validate: error:", *expected)
    assert not (root / "checkpoints").exists() and not (root / "csv").exists()


def test_missing_data_path_names_the_option(capsys, tmp_path: Path):
    missing = tmp_path / "nonexistent"
    line = _fails(capsys, _validate(missing, tmp_path / "run", "--data.synthetic", "false"),
                  "data_dir=", str(missing), "not found")
    assert "data_tools" in line  # says how to make the dataset
    assert not missing.exists()


def test_bad_views_for_evaluate(capsys, tmp_path: Path):
    _fails(capsys, ["evaluate", "--config", str(SMOKE_CONFIG), "--ckpt_path", str(tmp_path / "x.ckpt"),
                    "--views", "2by3"], "videotok evaluate: error:", "--views", "CLIPSxCROPS", "'2by3'")
    _fails(capsys, ["evaluate", "--config", str(SMOKE_CONFIG), "--ckpt_path", str(tmp_path / "x.ckpt"),
                    "--views", "2x2"], "--views", "crops 1 or 3")
