"""Backbones initialised from image ViT weights (timm key names): a 1-frame, tubelet-1 ViViT is that
ViT; inflated video models start from it; from scratch the time embedding is random."""
from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from videotok.models import create_model

TINY_VIT = dict(img_size=96, patch_size=16, embed_dim=96, depth=6, num_heads=3, num_classes=6)


@pytest.fixture
def image_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, **TINY_VIT).eval()
    with torch.no_grad():  # timm zero-inits some tensors; random everywhere makes the test strict
        for p in vit.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return vit


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_one_frame_vivit_from_timm_vit_gives_its_logits(image_vit, tmp_path: Path, suffix: str):
    path = tmp_path / f"vit{suffix}"
    if suffix == ".pth":
        torch.save({"model": image_vit.state_dict()}, path)  # nested, as many checkpoints are
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in image_vit.state_dict().items()}, str(path))
    video_vit = create_model("vivit_tiny", num_frames=1, tubelet_size=1, img_size=96, num_classes=6,
                             pretrained=str(path)).eval()
    image = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = image_vit(image)
        got = video_vit(image.unsqueeze(2))  # [B, C, H, W] -> [B, C, 1, H, W]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_inflated_timesformer_starts_from_the_image_model(image_vit, tmp_path: Path):
    path = tmp_path / "vit.pth"
    torch.save(image_vit.state_dict(), path)
    model = create_model("timesformer_tiny", num_frames=4, img_size=96, num_classes=6, pretrained=str(path))
    assert bool((model.time_embed == 0).all())  # every frame embeds as the image model embeds it
    block = model.blocks[2]
    torch.testing.assert_close(block.temporal_attn.qkv.weight, block.attn.qkv.weight)  # the paper's init
    torch.testing.assert_close(block.attn.qkv.weight, image_vit.blocks[2].attn.qkv.weight)
    torch.testing.assert_close(model.patch_embed.proj.weight[:, :, 0], image_vit.patch_embed.proj.weight)


def test_from_scratch_time_embedding_is_random():
    torch.manual_seed(0)
    model = create_model("timesformer_tiny", num_frames=8)
    assert float(model.time_embed.detach().std()) > 0.01
    # ... so the untrained model already tells frame orders apart
    video = torch.randn(1, 3, 8, 96, 96)
    with torch.no_grad():
        assert not torch.allclose(model(video), model(video.flip(2)), atol=1e-6)


def test_loading_says_what_was_loaded_inflated_and_new(image_vit, tmp_path: Path, caplog):
    """Every tensor of a tiny TimeSformer is accounted for once: loaded as it was, inflated, or new."""
    import logging

    from videotok.models.pretrained import load_image_weights

    path = tmp_path / "vit.pth"
    torch.save(image_vit.state_dict(), path)
    model = create_model("timesformer_tiny", num_frames=4, img_size=96, num_classes=10)  # other classes: new head
    with caplog.at_level(logging.INFO, logger="videotok.models.pretrained"):
        report = load_image_weights(model, str(path))
    depth = len(model.blocks)
    temporal = 6 * depth  # temporal_attn qkv and proj, temporal_norm1 (weight and bias each), from the spatial ones
    assert sorted(report.new) == sorted(["head.weight", "head.bias", *[f"blocks.{i}.temporal_fc.{p}"
                                                                        for i in range(depth) for p in ("weight", "bias")]])
    assert {"patch_embed.proj.weight", "time_embed"} <= set(report.inflated) and len(report.inflated) == 2 + temporal
    assert len(report.loaded) + len(report.inflated) + len(report.new) == len(model.state_dict())
    assert report.skipped == ["head.weight (6, 96) (model: (10, 96))", "head.bias (6,) (model: (10,))"]
    assert report.summary() == (f"model.pretrained {path}: {len(report.loaded)} tensors loaded, {2 + temporal} inflated, "
                                f"{len(report.new)} new (2 of the file's not used)")
    assert f"{path} new ({len(report.new)}): " in caplog.text and "blocks.0.temporal_fc.weight" in caplog.text


def test_a_file_of_another_model_is_refused_naming_the_mismatch(tmp_path: Path):
    """A ViT of another width, or a video checkpoint of another family, fills almost nothing."""
    wide = timm.create_model("vit_tiny_patch16_224", pretrained=False, **{**TINY_VIT, "embed_dim": 192})
    torch.save(wide.state_dict(), tmp_path / "wide.pth")
    with pytest.raises(ValueError, match=r"fills 0 of the \d+ backbone tensors of timesformer_tiny \(embed_dim 96\); "
                                         r"shapes differ: .*\(model: "):
        create_model("timesformer_tiny", pretrained=str(tmp_path / "wide.pth"))
    torch.save({"videomae.embeddings.patch_embeddings.projection.weight": torch.zeros(96, 3, 2, 16, 16)},
               tmp_path / "other.pth")
    with pytest.raises(ValueError, match=r"names it has that the model lacks: videomae\.embeddings.*model\.published"):
        create_model("timesformer_tiny", pretrained=str(tmp_path / "other.pth"))
