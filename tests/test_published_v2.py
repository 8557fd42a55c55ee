"""VideoMAE V2 checkpoints (OpenGVLab/VideoMAEv2) through the published loader: the authors' logits.

tests/fixtures/videomae_v2_reference.npz holds their model's logits (made by
benchmarks/videomae_v2_reference.py from their code); the state dicts and clips are regenerated here
from the same seeds, saved as their scripts save them, and loaded as a user's file would be.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from videotok.models import published
from videotok.models.published import load_published

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import videomae_v2_reference as reference  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "videomae_v2_reference.npz"
CASES = {case.name: case for case in reference.CASES}
# ViT-g's 50 M parameters take seconds per step on a CPU: one of its layouts runs with -m slow
SLOW = {("vit_g14", "save_model")}
PAIRS = [pytest.param(case.name, layout, marks=[pytest.mark.slow] if (case.name, layout) in SLOW else [])
         for case in reference.CASES for layout in case.layouts]


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURE))


def _regenerated(case: reference.Case, fixture: dict[str, np.ndarray]) -> None:
    """The weights and clip are those the authors' logits were computed from."""
    np.testing.assert_allclose(reference.checksum(list(reference.authors_state(case).values())),
                               fixture[f"weights/{case.name}"], rtol=1e-9)
    np.testing.assert_allclose(reference.checksum([reference.clip(case)]), fixture[f"clip/{case.name}"], rtol=1e-9)


@pytest.mark.parametrize(("name", "layout"), PAIRS)
def test_v2_checkpoints_give_the_authors_logits(name, layout, fixture, tmp_path, caplog):
    """ViT-B K710 in fp16, ViT-g/14 (16 heads of 88) in both layouts, cos_attn, use_mean_pooling=False:
    each loads with nothing guessed and gives the authors' logits within 1e-5."""
    case = CASES[name]
    _regenerated(case, fixture)
    with caplog.at_level(logging.WARNING, logger="videotok.models.published"):
        logits = reference.ours(case, layout, tmp_path)
    assert "GUESSED" not in caplog.text
    difference = float((logits - torch.from_numpy(fixture[f"logits/{name}"])).abs().max())
    print(f"{name} {layout}: max |logit difference| {difference:.2e}")
    assert difference <= reference.TOLERANCE


@pytest.mark.slow
def test_vit_g_with_vits_64_dims_per_head_is_wrong_and_the_check_sees_it(fixture, tmp_path):
    """1408 / 64 = 22 heads fits every weight shape: the logits differ far beyond the tolerance (what
    videotok built before the authors' widths were known), so the check above can tell."""
    case = CASES["vit_g14"]
    logits = reference.ours(case, "deepspeed_fp16", tmp_path, num_heads=22)
    assert float((logits - torch.from_numpy(fixture["logits/vit_g14"])).abs().max()) > 1e-2


def test_heads_come_from_the_saved_model_name_or_the_known_widths_and_a_given_count_wins(tmp_path):
    case = CASES["vit_g14"]
    saved = load_published(str(reference.save(case, "save_model", tmp_path / "g.pth")))
    assert saved.model_args["num_heads"] == 16 and saved.model == "videomae_d1408_l2_h16_patch14_28"
    assert any("the saved args.model 'vit_giant_patch14_224'" in note for note in saved.notes)
    small = CASES["no_mean_pooling"]  # a DeepSpeed file: no arguments, 384 wide as the authors' ViT-S
    bare = load_published(str(reference.save(small, "deepspeed_fp16", tmp_path / "s.pth")))
    assert bare.model_args["num_heads"] == 6 and any("384-wide" in note for note in bare.notes)
    given = load_published(str(tmp_path / "s.pth"), num_heads=12)  # the user's count wins, named by it
    assert given.model == "videomae_d384_l2_h12_patch16_224" and given.model_args["num_heads"] == 12


def test_a_saved_model_name_of_another_width_is_refused(tmp_path):
    case = CASES["cos_attn"]
    path = reference.save(case, "save_model", tmp_path / "s.pth")
    content = torch.load(path, weights_only=False)
    content["args"].model = "vit_base_patch16_224"
    torch.save(content, path)
    with pytest.raises(ValueError, match="'vit_base_patch16_224' is 768 wide, the weights 384"):
        load_published(str(path))


def test_a_head_count_nothing_states_is_guessed_with_a_warning(tmp_path, caplog):
    """192 wide is no size the authors register and the file states nothing: 3 heads of 64, said."""
    state = {k: v for k, v in reference.authors_state(reference.Case(
        "odd", 192, 1, 3, 16, 768, 4, 2, 32, ("deepspeed_fp16",))).items()}
    torch.save({"module": state}, tmp_path / "odd.pth")
    with caplog.at_level(logging.WARNING, logger="videotok.models.published"):
        ckpt = load_published(str(tmp_path / "odd.pth"))
    assert ckpt.model_args["num_heads"] == 3 and "GUESSED 3" in caplog.text
    # a config beside it states them (transformers' model_type too: the keys still say the original format)
    (tmp_path / "config.json").write_text('{"model_type": "videomae", "num_attention_heads": 4}')
    published._CACHE.clear()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="videotok.models.published"):
        ckpt = load_published(str(tmp_path / "odd.pth"))
    assert ckpt.format == "videomae_pth" and ckpt.model_args["num_heads"] == 4 and "GUESSED" not in caplog.text


@pytest.mark.parametrize(("width", "heads"), [(384, 6), (768, 12), (1024, 16), (1280, 16), (1408, 16)])
def test_every_size_the_authors_register_has_their_heads(width, heads):
    """ViT-S/B/L/H/g of their modeling_finetune.py: ViT-H has 80 dims per head and ViT-g 88, so
    neither is width / 64; a saved args.model of the size says the same."""
    from videotok.models.published.files import Found
    from videotok.models.published.videomae import AUTHORS_SIZES, heads_stated

    found = Found(path=Path("x.pth"), state={})
    assert heads_stated(found, {}, width, "x.pth")[0] == heads
    size = next(s for s, (w, _) in AUTHORS_SIZES.items() if w == width)
    assert heads_stated(found, {"model": f"vit_{size}_patch16_224"}, width, "x.pth") == (
        heads, f"the saved args.model 'vit_{size}_patch16_224'")
