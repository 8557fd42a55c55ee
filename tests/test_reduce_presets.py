"""The reducer presets in configs/reducer/: every file loads, builds its reducer and runs on a narrow
stand-in of each backbone it was tuned for; its comment's GFLOPs agree with its name.

A preset's first line is a comment ending in the measured GFLOPs, one entry per backbone it serves:
  "...; GFLOPs: TimeSformer-B 8x224 130.26 vs 195.83 (-33%), ViViT-B 8x224 54.63 vs 78.96 (-31%)".
The stand-in has the base model's depth and token grid at width 48, so every schedule (layer indices,
r per block, frames removed) binds and runs as it would on the base model, in a fraction of a second.
The base models' GFLOPs are checked by the slow test.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml

from videotok.flops import measure_cost
from videotok.models import create_model
from videotok.reduce import build_reducer, list_reducers, reducer_class

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs" / "reducer"
PRESETS = sorted(PRESET_DIR.glob("*.yaml"))
LEVELS = {"third": (0.25, 0.41), "half": (0.42, 0.58)}  # share of GFLOPs cut each level name promises
BACKBONES = {  # comment name -> (base model, narrow stand-in with the same depth and grid)
    "TimeSformer-B": ("timesformer_base_patch16_224", "timesformer_tiny"),
    "ViViT-B": ("vivit_base_patch16_224", "vivit_tiny"),
}
MEASURED = re.compile(r"(TimeSformer-B|ViViT-B) 8x224 ([\d.]+) vs ([\d.]+)")


def load(path: Path) -> tuple[str, dict, dict[str, tuple[float, float]]]:
    """(reducer, reducer_args, {backbone: (GFLOPs, baseline GFLOPs)}) of a preset file."""
    text = path.read_text()
    data = yaml.safe_load(text)
    assert set(data) <= {"reducer", "reducer_args"} and "reducer" in data, f"{path.name}: unexpected keys {set(data)}"
    first = text.splitlines()[0]
    assert first.startswith("# "), f"{path.name}: the first line must be a comment saying what the preset does"
    measured = {m.group(1): (float(m.group(2)), float(m.group(3))) for m in MEASURED.finditer(first)}
    assert measured, f"{path.name}: the comment gives no 'TimeSformer-B 8x224 G vs G0' measurement"
    return data["reducer"], dict(data.get("reducer_args") or {}), measured


def level_of(path: Path) -> str:
    levels = [level for level in LEVELS if f"_{level}" in path.stem]
    assert len(levels) == 1, f"{path.name}: the name must say one level of {sorted(LEVELS)}"
    return levels[0]


def test_every_reducer_has_both_levels_for_timesformer() -> None:
    """Except content-aware reducers (rlt), whose cost follows the clip: a level cannot be promised."""
    names = {p.name for p in PRESETS}
    for reducer in {r for r in list_reducers() if not reducer_class(r).content_aware} - {"none"}:
        for level in LEVELS:
            assert f"{reducer}_{level}.yaml" in names, f"configs/reducer/{reducer}_{level}.yaml is missing"


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_matches_its_name_and_comment(path: Path) -> None:
    reducer, args, measured = load(path)
    assert path.stem.startswith(reducer + "_"), f"{path.name} names another reducer than {reducer!r}"
    if path.stem.endswith("_vivit"):
        assert set(measured) == {"ViViT-B"}, f"{path.name} is the ViViT-B variant; its comment must measure ViViT-B only"
    else:
        assert "TimeSformer-B" in measured
    low, high = LEVELS[level_of(path)]
    for backbone, (gflops, baseline) in measured.items():
        assert low <= 1 - gflops / baseline <= high, f"{path.name}: {backbone} cut {1 - gflops / baseline:.0%}"
    build_reducer(reducer, **args)  # unknown arguments fail here


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_runs_on_each_backbone_it_serves(path: Path) -> None:
    reducer, args, measured = load(path)
    for backbone in measured:
        _, stand_in = BACKBONES[backbone]
        torch.manual_seed(0)
        model = create_model(stand_in, depth=12, img_size=224, embed_dim=48, num_heads=2, num_classes=4,
                             reducer=build_reducer(reducer, **args))
        trace: list[int] = []
        with torch.no_grad():
            logits = model.eval()(torch.randn(1, 3, 8, 224, 224), trace=trace)
        assert logits.shape == (1, 4) and bool(torch.isfinite(logits).all())
        assert trace[-1] < trace[0], f"{path.name} did not reduce the tokens on {backbone}: {trace}"


@pytest.mark.slow
@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_gflops_on_base_models(path: Path) -> None:
    """The GFLOPs in the comment, measured again on the base model (about 10 s per backbone on a CPU),
    with `videotok flops`'s seeded weights: where frames end up with unequal token counts (global
    merges on TimeSformer), the padded spatial attention follows the weights' merges (cross_frame_half
    84.7-85.7 over three initialisations)."""
    reducer, args, measured = load(path)
    for backbone, (gflops, baseline) in measured.items():
        model, _ = BACKBONES[backbone]
        torch.manual_seed(0)
        cost = measure_cost(create_model(model, reducer=build_reducer(reducer, **args)))
        assert cost.gflops == pytest.approx(gflops, rel=0.05), f"{path.name} on {backbone}"
