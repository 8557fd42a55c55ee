"""Checkpoints: the reducer is stored once, and checkpoints of release 0.1.0 (every reducer
parameter under `reducer.*` and `model.reducer.*`) load and compute what that release computed.

The release checkpoint is written at test time by release 0.1.0 itself: its code is taken from
this repository's history (`git archive`), and tests/fixtures/make_release_checkpoint.py runs
with it, saving the logits and the evaluation that release gave. No checkpoint is committed.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest
import torch

from videotok.data import KineticsDataModule
from videotok.evaluate import evaluate
from videotok.train import VideoClassifier
from videotok.train.build import build_classifier
from videotok.train.checkpoint import load_checkpoint, upgrade_checkpoint
from videotok.train.module import ATTENTION_KEY
from videotok.train.optim import parameter_groups

REPO = Path(__file__).resolve().parents[1]
RELEASE_COMMIT = "68c6fff"  # release 0.1.0: every reducer parameter stored twice
MAKER = Path(__file__).parent / "fixtures" / "make_release_checkpoint.py"
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint saved by release 0.1.0's own code (see the module docstring)."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", RELEASE_COMMIT, "videotok", "data_tools"],
                             capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"release {RELEASE_COMMIT} is not in this checkout's git history: "
                    f"{archive.stderr.decode().strip()[:200]}")
    code = tmp_path_factory.mktemp("release_0.1.0")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(code, filter="data")
    path = code / "release.ckpt"
    env = dict(os.environ, PYTHONPATH=str(code), OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, str(MAKER), str(path)], cwd=code, env=env, check=True,
                   capture_output=True, timeout=300)
    return path


def seeded_clip() -> torch.Tensor:  # as tests/fixtures/make_release_checkpoint.py
    return torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(7))


def tiny(**kwargs) -> VideoClassifier:
    args = dict(model="timesformer_tiny", num_classes=6, num_frames=4, img_size=32,
                reducer="semantic", reducer_args={"layer": 2, "tokens": "1x2x2"})
    return VideoClassifier(**{**args, **kwargs})


def old_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Release 0.1.0's keys: the reducer first as `reducer.*`, then the module as today."""
    old = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.reducer.")}
    return {**old, **state}


def test_a_reducer_parameter_is_stored_once():
    keys = list(tiny().state_dict())
    assert "model.reducer.centres" in keys
    assert not [k for k in keys if k.startswith("reducer.")]


def test_the_release_checkpoint_is_in_the_old_layout(release: Path):
    state = load_checkpoint(release)["state_dict"]
    assert "reducer.fuser.gate" in state and "model.reducer.fuser.gate" in state


def test_release_checkpoint_loads_with_its_logits(release: Path):
    checkpoint = load_checkpoint(release)
    classifier = VideoClassifier.load_from_checkpoint(release, map_location="cpu").eval()
    assert not [k for k in classifier.state_dict() if k.startswith("reducer.")]
    assert classifier.reducer is classifier.model.reducer and classifier.hparams.reducer == "crucial_merge"
    with torch.no_grad():
        logits = classifier(seeded_clip())
    torch.testing.assert_close(logits, checkpoint["videotok_expected"]["logits"], atol=1e-6, rtol=0)


def test_release_checkpoint_evaluates_to_the_same_numbers(release: Path, synthetic_datamodule_kwargs):
    """The `videotok evaluate` path: build_classifier from a config, then evaluate the test split the
    release scored (its own generator's videos, left beside the checkpoint)."""
    checkpoint = load_checkpoint(release)
    hp = checkpoint["hyper_parameters"]
    config = {"model": {k: hp[k] for k in ("model", "tubelet_size", "model_args")},
              "data": {"data_dir": str(release.parent / "synthetic"), **synthetic_datamodule_kwargs}}
    datamodule = KineticsDataModule(**config["data"])
    classifier = build_classifier(config, datamodule, checkpoint=checkpoint)
    result = evaluate(classifier, datamodule, split="test", views=(2, 3), progress=False)
    expected = checkpoint["videotok_expected"]["evaluation"]
    assert {k: getattr(result, k) for k in expected} == pytest.approx(expected)


def test_old_state_dict_loads_as_it_is_given():
    trained = tiny()
    with torch.no_grad():
        trained.model.reducer.centres.add_(1.0)
    fresh = tiny()
    fresh.load_state_dict(old_layout(trained.state_dict()))  # strict: no key left over or missing
    assert torch.equal(fresh.model.reducer.centres, trained.model.reducer.centres)


def test_old_optimizer_state_is_mapped_to_each_parameter():
    """0.1.0's optimiser listed the reducer's parameters first; a resumed run must give each
    parameter its own moments."""
    module = tiny()
    groups = parameter_groups(module, 0.05)
    names = {id(p): n for n, p in module.named_parameters()}
    old_groups = [{**g, "params": sorted(g["params"], key=lambda p: not names[id(p)].startswith("model.reducer."))}
                  for g in groups]
    optimizer = torch.optim.AdamW(old_groups, lr=0.1)
    for p in module.parameters():
        p.grad = torch.full_like(p, float(len(names[id(p)])))  # a different gradient per parameter
    optimizer.step()
    checkpoint = {"state_dict": old_layout(module.state_dict()), "optimizer_states": [optimizer.state_dict()]}

    resumed = tiny()
    upgrade_checkpoint(checkpoint, resumed, parameter_groups(resumed, 0.05))
    resumed.load_state_dict(checkpoint["state_dict"])
    today = torch.optim.AdamW(parameter_groups(resumed, 0.05), lr=0.1)
    today.load_state_dict(checkpoint["optimizer_states"][0])
    for name, p in resumed.named_parameters():
        torch.testing.assert_close(today.state[p]["exp_avg"], torch.full_like(p, 0.1 * len(name)))


@pytest.mark.parametrize("reducer,args,saved,divided", [
    ("crucial_merge", {"keep_rate": 0.7, "layers": "1"}, None, False),  # trained before: joint after merges
    ("crucial_merge", {"keep_rate": 0.7, "layers": "1"}, "divided", True),
    ("crucial_merge", {"keep_rate": 0.7, "layers": "1"}, "joint", False),  # a resumed legacy run stays legacy
    ("tome", {"r": 2}, None, True),  # training-free on an old baseline: the baseline learned divided
])
def test_merged_tokens_attend_as_the_checkpoint_was_trained(reducer, args, saved, divided):
    trained = tiny(reducer=reducer, reducer_args=args)
    checkpoint = {"state_dict": trained.state_dict()}
    if saved is not None:
        checkpoint[ATTENTION_KEY] = saved
    loaded = tiny(reducer=reducer, reducer_args=args)
    loaded.on_load_checkpoint(checkpoint)
    assert all(block.divided_after_merge == divided for block in loaded.model.blocks)
    resaved: dict = {}
    loaded.on_save_checkpoint(resaved)
    assert resaved[ATTENTION_KEY] == ("divided" if divided else "joint")
