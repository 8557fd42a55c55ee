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
