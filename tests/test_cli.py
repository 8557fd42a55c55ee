"""`videotok` commands that need no training: flops, reducers, models, and the config plumbing."""
from __future__ import annotations

import re

import pytest
import yaml

from videotok.cli import main
from videotok.config import expand_configs, load_config
from videotok.reduce.choice import ReducerChoice


def run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def gflops(out: str) -> float:
    return float(re.search(r"GFLOPs per view: ([\d.]+)", out).group(1))


DEIT_S = ("--model", "vivit_small_patch16_224", "--num-frames", "1", "--tubelet-size", "1")


def test_flops_deit_s_is_a_vit(capsys):
    out = run(capsys, "flops", *DEIT_S)
    assert gflops(out) == pytest.approx(4.61, rel=0.01)
    assert "tokens per block: 197 x13" in out  # 12 blocks, then the final count


def test_flops_with_another_patch_size_is_named_by_it(capsys, tmp_path):
    """ViT-S/14 (DINOv2-style) at 224: 16 x 16 patches + CLS; the same model from --patch-size and from a
    config's model_args, reported under the name of what was built."""
    out = run(capsys, "flops", *DEIT_S, "--patch-size", "14")
    assert out.startswith("model: vivit_small_patch14_224 (1x224)")
    assert "tokens per block: 257 x13" in out
    assert gflops(out) == pytest.approx(6.12, rel=0.01)  # 12 x (12 N C^2 + 2 N^2 C) + patch embedding, N=257
    config = {"model": {"model": "vivit_small_patch16_224", "tubelet_size": 1, "model_args": {"patch_size": 14}},
              "data": {"num_frames": 1, "crop_size": 224}}
    (tmp_path / "vit_s14.yaml").write_text(yaml.safe_dump(config))
    assert run(capsys, "flops", "--config", str(tmp_path / "vit_s14.yaml")) == out


def test_flops_evit_and_tome_on_deit_s(capsys):
    out = run(capsys, "flops", *DEIT_S, "--reducer", "evit", "--reducer-arg", "keep_rate=0.7",
              "--reducer-arg", "layers=3,6,9")
    assert gflops(out) == pytest.approx(3.0, rel=0.03)
    assert "197 x4 -> 140 x3 -> 100 x3 -> 72 x3" in out
    out = run(capsys, "flops", *DEIT_S, "--reducer", "tome", "--reducer-arg", "r=13")
    assert gflops(out) == pytest.approx(2.71, rel=0.03)
    assert out.rstrip().endswith("-> 41")


def test_flops_seed_methods_on_deit_s(capsys):
    out = run(capsys, "flops", *DEIT_S, "--reducer", "semantic", "--reducer-arg", "layer=4",
              "--reducer-arg", "tokens=1x4x4")
    assert gflops(out) == pytest.approx(1.91, rel=0.03)
    out = run(capsys, "flops", *DEIT_S, "--reducer", "crucial_merge", "--reducer-arg", "keep_rate=0.7",
              "--reducer-arg", "layers=3,6,9")
    assert 2.9 <= gflops(out) <= 3.3


def test_flops_timesformer_base(capsys):
    out = run(capsys, "flops", "--model", "timesformer_base_patch16_224", "--num-frames", "8")
    assert gflops(out) == pytest.approx(195.8, rel=0.01)
    assert "params: 121.5" in out


def test_flops_videomae_base(capsys):
    """DESIGN.md's VideoMAE-B 16x224 row: 180 GFLOPs per view (the paper's; 8 x 14 x 14 tubelets, no CLS)."""
    out = run(capsys, "flops", "--model", "videomae_base_patch16_224", "--num-frames", "16")
    assert gflops(out) == pytest.approx(180, rel=0.02)
    assert "params: 86.5" in out and "tokens per block: 1568 x13" in out


def test_flops_reads_a_preset_file(capsys):
    out = run(capsys, "flops", "--model", "timesformer_tiny", "--reducer", "configs/reducer/tome_third.yaml",
              "--reducer-arg", "r=2")
    assert "reducer: tome r=2 scope=frame" in out


def test_reducers_and_models_are_listed(capsys):
    out = run(capsys, "reducers")
    for name in ("none", "tome", "evit", "random", "pool", "semantic", "crucial_merge", "cross_frame"):
        assert re.search(rf"^{name}\b", out, re.M)
    assert "    keep_rate = " in out
    trained = {line.split("[")[0].strip() for line in out.splitlines() if "[adds parameters" in line}
    assert trained == {"semantic", "crucial_merge"}  # crucial_merge through its default fusion=True
    lines = {line.split("[")[0].strip(): line for line in out.splitlines() if "[adds parameters" in line}
    assert "training-free with global_centres=false]" in lines["semantic"]
    assert "training-free with fusion=false]" in lines["crucial_merge"]
    assert "timesformer_base_patch16_224" in run(capsys, "models")


def test_bad_reducer_is_one_line_error(capsys):
    assert main(["flops", "--model", "timesformer_tiny", "--reducer", "tomee"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown reducer 'tomee'" in err and "tome" in err


def test_reducer_flags_are_parsed_once_into_one_choice():
    assert ReducerChoice.from_flags("tome", ["r=4", "scope=frame"]) == ReducerChoice("tome", {"r": 4, "scope": "frame"})
    preset = ReducerChoice.from_flags("configs/reducer/tome_third.yaml", ["r=2"])  # --reducer-arg overrides
    assert preset == ReducerChoice("tome", {"r": 2, "scope": "frame"}) and preset.setting == "r=2 scope=frame"
    assert ReducerChoice.from_flags(None, []) is None
    with pytest.raises(ValueError, match="--reducer-arg needs --reducer"):
        ReducerChoice.from_flags(None, ["r=4"])
    assert type(ReducerChoice("evit", {"keep_rate": 0.5}).build()).__name__ == "EViT"


def test_bases_merge_deltas_over_their_bases(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"data": {"batch_size": 8, "num_frames": 8}, "model": {"lr": 0.1}}))
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump({"bases": ["base.yaml"], "data": {"batch_size": 2}}))
    assert load_config(tmp_path / "exp.yaml") == {"data": {"batch_size": 2, "num_frames": 8}, "model": {"lr": 0.1}}
    argv = expand_configs(["fit", "--config", str(tmp_path / "exp.yaml")])
    assert "bases" not in yaml.safe_load(argv[2]) and yaml.safe_load(argv[2])["data"]["batch_size"] == 2
    (tmp_path / "loop.yaml").write_text("bases: [loop.yaml]\n")
    with pytest.raises(ValueError, match="cycle"):
        load_config(tmp_path / "loop.yaml")


def test_shipped_experiments_resolve():
    smoke = load_config("configs/experiment/smoke.yaml")
    assert smoke["model"]["model"] == "timesformer_tiny" and smoke["data"]["synthetic"] is True
    k400 = load_config("configs/experiment/k400_timesformer_base.yaml")
    assert k400["model"]["model"] == "timesformer_base_patch16_224" and k400["trainer"]["strategy"] == "ddp"
