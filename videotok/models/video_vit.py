"""One video ViT for TimeSformer (divided space-time attention, per-frame patches) and ViViT model 1
(joint attention, tubelet embedding). Tokens travel between blocks as a TokenState with an explicit
(T, H, W) grid, and a reducer decides at each block what to merge.
"""
from __future__ import annotations

from typing import Optional

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn

from videotok.layers.block import Block
from videotok.reduce.base import BackboneSpec, Reducer
from videotok.reduce.none import NoReduction
from videotok.reduce.state import TokenState

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PatchEmbed3d(nn.Module):
    """Video [B, C, T, H, W] -> tubelet tokens [B, C', T/kt, H/p, W/p] with one Conv3d (`proj`, as timm)."""

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, video: Tensor) -> Tensor:
        return self.proj(video)


class VideoViT(nn.Module):
    """TimeSformer (attention="divided", tubelet_size=1) or ViViT model 1 (attention="joint")."""

    def __init__(
        self,
        num_classes: int = 400,
        img_size: int = 224,
        patch_size: int = 16,
        num_frames: int = 8,
        tubelet_size: int = 1,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        attention: str = "divided",
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        init_values: Optional[float] = None,
        global_pool: str = "token",
        proportional_attn: bool = True,
        reducer: Optional[Reducer] = None,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        model_name: str = "",
    ):
        super().__init__()
        if attention not in ("divided", "joint"):
            raise ValueError(f"attention={attention!r}: choose 'divided' (TimeSformer) or 'joint' (ViViT)")
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool={global_pool!r}: choose 'token' or 'avg'")
        if img_size % patch_size or num_frames % tubelet_size:
            raise ValueError(
                f"img_size {img_size} must divide by patch_size {patch_size} and num_frames {num_frames} "
                f"by tubelet_size {tubelet_size}"
            )
        self.model_name, self.num_classes = model_name, num_classes
        self.img_size, self.num_frames, self.in_chans = img_size, num_frames, in_chans
        self.global_pool, self.mean, self.std = global_pool, tuple(mean), tuple(std)
        self.embed_dim, self.attention = embed_dim, attention
        self.grid = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        t, h, w = self.grid

        self.patch_embed = PatchEmbed3d(patch_size, tubelet_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + h * w, embed_dim))  # spatial, timm layout
        self.time_embed = nn.Parameter(torch.zeros(1, t, embed_dim))  # zeroed by image-weight loading
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i], attn_drop_rate, drop_rate, init_values,
                  divided=attention == "divided", proportional=proportional_attn)
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()
        self.reducer = reducer if reducer is not None else NoReduction()
        self.reducer.bind(BackboneSpec(depth, embed_dim, num_heads, self.grid, 1, attention, model_name))

    def _init_weights(self) -> None:
        """From scratch: time_embed is random like pos_embed. Zero would make the first
        steps blind to frame order (the model starts invariant to shuffling frames), which
        measurably slowed learning motion on the synthetic set; image-weight loading zeroes it."""
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.time_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # TimeSformer: the temporal branch starts as identity except in the first block
        for i, block in enumerate(self.blocks):
            if block.divided and i > 0:
                nn.init.zeros_(block.temporal_fc.weight)
                nn.init.zeros_(block.temporal_fc.bias)

    def check_input(self, video: Tensor) -> None:
        expected = (self.in_chans, self.num_frames, self.img_size, self.img_size)
        if video.ndim != 5 or tuple(video.shape[1:]) != expected:
            raise ValueError(
                f"{self.model_name or 'model'} expects video [B, C, T, H, W] = [B, {', '.join(map(str, expected))}], "
                f"got {list(video.shape)}"
            )

    def embed(self, video: Tensor) -> TokenState:
        self.check_input(video)
        x = self.patch_embed(video)  # [B, C, T', H', W']
        b, c, t, h, w = x.shape
        x = x.flatten(2).transpose(1, 2).reshape(b, t, h * w, c)  # t-major tokens [B, T', H'W', C]
        x = x + self.pos_embed[:, None, 1:] + self.time_embed[:, :, None]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(b, -1, -1)
        x = torch.cat([cls, x.reshape(b, t * h * w, c)], dim=1)  # [B, 1 + T'H'W', C]
        return TokenState.from_grid(self.pos_drop(x), (t, h, w), num_prefix=1)

    def forward_tokens(self, video: Tensor, trace: Optional[list[int]] = None) -> TokenState:
        """Run the blocks; `trace` collects the token count entering each block, then the final count."""
        state = self.embed(video)
        for i, block in enumerate(self.blocks):
            if trace is not None:
                trace.append(state.num_tokens)
            state = self.reducer.forward_block(block, state, i)
        if trace is not None:
            trace.append(state.num_tokens)
        return state.replace(x=self.norm(state.x))

    def forward_head(self, state: TokenState) -> Tensor:
        if self.global_pool == "token":
            pooled = state.x[:, 0]
        else:  # size-weighted mean of the non-prefix tokens = mean over the original patches
            w = state.size[:, state.num_prefix :, None]  # float32 sizes: exact weights in bf16 runs
            pooled = ((state.x[:, state.num_prefix :] * w).sum(1) / w.sum(1)).to(state.x.dtype)
        return self.head(self.head_drop(pooled))

    def forward(self, video: Tensor, trace: Optional[list[int]] = None) -> Tensor:
        """video [B, C, T, H, W] -> logits [B, num_classes]; `trace` as in forward_tokens."""
        return self.forward_head(self.forward_tokens(video, trace))
