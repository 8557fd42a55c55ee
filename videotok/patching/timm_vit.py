"""timm's VisionTransformer run by a videotok backbone made of its own parameters: a one-frame video
ViT with joint attention is exactly a ViT (DESIGN.md), and our parameter names are timm's.

Supported: the plain ViT/DeiT layout (one CLS token with its position, the CLS readout, pre-norm
blocks with optional LayerScale, GELU). Anything else (register tokens, average or attention
pooling, qk-norm, a pre-norm, dynamic image sizes) is refused by name rather than run differently.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from videotok.models.base import VideoBackbone
from videotok.models.registry import create_model, sized_name
from videotok.patching.host import ATTRIBUTE
from videotok.patching.share import share_parameters


def matches(model: nn.Module) -> bool:
    return type(model).__name__ == "VisionTransformer" and type(model).__module__.startswith("timm.")


def _refusals(model: nn.Module) -> list[str]:
    """What this ViT has that videotok's backbone does not reproduce."""
    checks = {
        "a CLS token (class_token=True)": getattr(model, "has_class_token", False),
        "no register tokens": getattr(model, "num_reg_tokens", 0) == 0,
        "positions that include the CLS token (no_embed_class=False)": not getattr(model, "no_embed_class", False),
        "global_pool='token'": getattr(model, "global_pool", "") == "token",
        "a fixed image size (dynamic_img_size=False)": not getattr(model, "dynamic_img_size", False),
        "no pre-norm (norm_pre)": isinstance(getattr(model, "norm_pre", nn.Identity()), nn.Identity),
        "no patch dropout": isinstance(getattr(model, "patch_drop", nn.Identity()), nn.Identity),
        "no qk-norm or attention norm": all(isinstance(getattr(b.attn, n, nn.Identity()), nn.Identity)
                                            for b in model.blocks for n in ("q_norm", "k_norm", "norm")),
        "GELU MLPs": all(isinstance(b.mlp.act, nn.GELU) for b in model.blocks),
        "a square image and patch": len(set(model.patch_embed.img_size)) == 1
                                    and len(set(model.patch_embed.patch_size)) == 1,
    }
    return [needed for needed, ok in checks.items() if not ok]


def _rate(module: Optional[nn.Module]) -> float:
    return float(getattr(module, "p", getattr(module, "drop_prob", 0.0)) or 0.0)


def build_backbone(model: nn.Module) -> VideoBackbone:
    """videotok's one-frame backbone of `model`, its parameters `model`'s own, without a reducer."""
    refused = _refusals(model)
    if refused:
        raise ValueError(f"videotok.patch supports timm ViTs with {'; '.join(refused)} (this one differs)")
    first, dim = model.blocks[0], model.embed_dim
    patch, img = model.patch_embed.patch_size[0], model.patch_embed.img_size[0]
    layer_scale = not isinstance(first.ls1, nn.Identity)
    args = dict(num_frames=1, tubelet_size=1, attention="joint", positions="separable", num_classes=model.num_classes,
                mlp_ratio=first.mlp.fc1.out_features / dim, qkv_bias=first.attn.qkv.bias is not None,
                init_values=1e-5 if layer_scale else None, norm_eps=model.norm.eps,
                act_layer="gelu" if first.mlp.act.approximate == "none" else "gelu_tanh",
                drop_rate=_rate(model.pos_drop), attn_drop_rate=_rate(first.attn.attn_drop),
                drop_path_rate=_rate(model.blocks[-1].drop_path1))
    name = sized_name("vivit", dim, len(model.blocks), first.attn.num_heads, patch, img)
    with torch.device("meta"):
        backbone = create_model(name, **args)
    weight = next(model.parameters())
    # one frame: the time embedding adds nothing, and stays nothing (no gradient)
    backbone.time_embed = nn.Parameter(torch.zeros(1, 1, dim, device=weight.device, dtype=weight.dtype),
                                       requires_grad=False)
    share_parameters(backbone, dict(model.named_parameters()), "timm ViT")
    return backbone


def make_forward(model: nn.Module) -> Callable[..., Any]:
    """The ViT's forward through the backbone: images [B, C, H, W] -> logits [B, classes]."""
    original = type(model).forward

    @functools.wraps(original)
    def forward(self: nn.Module, x: Tensor, attn_mask: Optional[Tensor] = None, **kwargs: Any) -> Tensor:
        if attn_mask is not None or kwargs.get("is_causal"):
            raise ValueError("attn_mask / is_causal: not available from a token-reduced ViT; videotok.unpatch first")
        return getattr(self, ATTRIBUTE)(x.unsqueeze(2))  # [B, C, H, W] -> [B, C, 1, H, W]

    return forward
