"""The named backbones (models/named.py, models/registry.py): every registered name is written out
where it is defined, builds at its own defaults (on the meta device: no weights), and runs a forward
pass at a small clip size; the spec a reducer gets needs no weights."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import videotok
from videotok.models import VideoBackbone, create_model, list_models, model_spec

NAMES = list_models()
SOURCE = "\n".join(p.read_text() for p in Path(videotok.__file__).parent.rglob("*.py"))


def test_the_registry_knows_the_four_families():
    assert len(NAMES) == 14  # three widths of three families, five of VideoMAE
    assert {"timesformer_tiny", "vivit_fe_tiny", "timesformer_base_patch16_224", "vivit_base_patch16_224",
            "videomae_tiny", "videomae_base_patch16_224", "videomae_huge_patch16_224"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_name_is_written_out(name: str):
    assert re.search(rf"^def {name}\(", SOURCE, re.M), f"no `def {name}(` in videotok's source"


@pytest.mark.parametrize("name", NAMES)
def test_every_name_builds_at_its_defaults(name: str):
    with torch.device("meta"):
        model = create_model(name)
    assert isinstance(model, VideoBackbone) and model.model_name == name
    frames = 16 if name.startswith("videomae_") and name != "videomae_tiny" else 8  # VideoMAE: 16 x 224
    assert model.num_classes == 400 and model.num_frames == frames and model.in_chans == 3
    assert model.spec == model_spec(name) and model.spec.depth == len(model.blocks)
    widths = {"tiny": 96, "small": 384, "base": 768, "large": 1024, "huge": 1280}
    expected_width = widths[re.search(r"tiny|small|base|large|huge", name)[0]]
    assert model.embed_dim == model.spec.dim == expected_width


@pytest.mark.parametrize("name", NAMES)
def test_every_name_runs_a_small_clip(name: str):
    """Full width, two blocks, 2 x 32 x 32 (the depth is checked above, on the meta device); filled
    with small random weights, faster than the real initialisation of a base-size model."""
    with torch.device("meta"):
        model = create_model(name, num_classes=3, num_frames=2, img_size=32, tubelet_size=2, depth=2)
    model = model.to_empty(device="cpu").eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in [*model.parameters(), *model.buffers()]:
            p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
    trace: list[int] = []
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 2, 32, 32), trace=trace)
    assert logits.shape == (2, 3) and bool(torch.isfinite(logits).all())
    assert trace == [model.num_prefix + 2 * 2] * 3  # one tubelet-frame of 2 x 2 patches (+ CLS), into 2 blocks and after


def test_model_spec_is_what_the_reducer_is_bound_to():
    spec = model_spec("vivit_fe_tiny", num_frames=4)
    assert spec.grid == (1, 6, 6) and spec.attention == "joint"  # the spatial encoder sees one frame
    assert model_spec("timesformer_tiny", tubelet_size=2).grid == (4, 6, 6)
    assert create_model("timesformer_tiny", tubelet_size=2).reducer.spec == model_spec("timesformer_tiny", tubelet_size=2)


def test_unknown_name_and_bad_input_are_named():
    with pytest.raises(ValueError, match="unknown model 'timesformer_huge'.*timesformer_tiny"):
        create_model("timesformer_huge")
    model = create_model("vivit_tiny", num_frames=4)
    with pytest.raises(ValueError, match=r"vivit_tiny expects video \[B, C, T, H, W\] = \[B, 3, 4, 96, 96\]"):
        model(torch.zeros(1, 3, 8, 96, 96))


def test_a_backbone_without_cls_refuses_token_pooling():
    with pytest.raises(ValueError, match=r"global_pool='token' pools the CLS token, but videomae_tiny has none; "
                                         r"use global_pool='avg'"):
        create_model("videomae_tiny", global_pool="token")
    assert create_model("videomae_tiny", global_pool="avg").num_prefix == 0


def test_a_model_is_named_by_the_patch_and_image_size_it_is_built_with():
    """A name states `_patchP_S`; built otherwise, the model reports the sizes it has (flops, evaluate and
    compare show `model_name`); names stating no sizes are kept, and the family prefix still picks views."""
    from videotok.evaluate.views import default_views

    with torch.device("meta"):
        def name(model: str, **overrides) -> str:
            return create_model(model, **overrides).model_name

        assert name("timesformer_small_patch16_224", patch_size=14) == "timesformer_small_patch14_224"
        assert name("timesformer_small_patch16_224", img_size=448) == "timesformer_small_patch16_448"
        assert name("vivit_fe_base_patch16_224", patch_size=14, img_size=448) == "vivit_fe_base_patch14_448"
        assert name("videomae_base_patch16_224", num_frames=8, tubelet_size=1) == "videomae_base_patch16_224"
        assert name("timesformer_tiny", patch_size=8, img_size=64) == "timesformer_tiny"
        renamed = create_model("timesformer_small_patch16_224", patch_size=14)
    assert renamed.spec.model == renamed.model_name and renamed.grid == (8, 16, 16)
    assert default_views(renamed.model_name) == (1, 3)
    assert model_spec("timesformer_small_patch16_224", patch_size=14) == renamed.spec


def test_a_sized_name_builds_the_width_it_states():
    """Published checkpoints of widths no name has are built under a name stating them; the name
    alone rebuilds the model, and overrides may not contradict it."""
    with torch.device("meta"):
        model = create_model("timesformer_d192_l3_h4_patch16_224", num_frames=4)
        assert (model.embed_dim, len(model.blocks), model.spec.num_heads, model.img_size) == (192, 3, 4, 224)
        assert model.model_name == "timesformer_d192_l3_h4_patch16_224" and model.spec.attention == "divided"
        assert create_model("videomae_base_patch16_224", depth=4).model_name == "videomae_d768_l4_h12_patch16_224"
        assert create_model("vivit_fe_d96_l2_h3_patch16_96").model_name == "vivit_fe_d96_l2_h3_patch16_96"
    with pytest.raises(ValueError, match=r"overrides contradict it: depth=2 \(the name says 3\)"):
        create_model("timesformer_d192_l3_h4_patch16_224", depth=2)
    with pytest.raises(ValueError, match="unknown model 'resnet_d192_l3_h4_patch16_224'"):
        create_model("resnet_d192_l3_h4_patch16_224")
