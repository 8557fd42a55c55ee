"""ViViT model 2, the factorised encoder: a spatial transformer runs on each tubelet-frame alone,
then a temporal transformer runs over the per-frame CLS tokens. Reducers act inside the spatial
encoder, image-style, each frame being its own sample.
"""
from __future__ import annotations

from typing import Optional

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn

from videotok.layers.block import Block
from videotok.models.video_vit import IMAGENET_MEAN, IMAGENET_STD, PatchEmbed3d
from videotok.reduce.base import BackboneSpec, Reducer
from videotok.reduce.none import NoReduction
from videotok.reduce.state import TokenState


class FactorisedViViT(nn.Module):
    def __init__(
        self,
        num_classes: int = 400,
        img_size: int = 224,
        patch_size: int = 16,
        num_frames: int = 8,
        tubelet_size: int = 2,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        temporal_depth: int = 4,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
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
        self.embed_dim, self.attention = embed_dim, "factorised"
        self.grid = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        t, h, w = self.grid

        self.patch_embed = PatchEmbed3d(patch_size, tubelet_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + h * w, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, depth + temporal_depth).tolist()
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i], attn_drop_rate, drop_rate, init_values,
                  proportional=proportional_attn)
            for i in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.temporal_cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.temporal_pos_embed = nn.Parameter(torch.zeros(1, 1 + t, embed_dim))
        self.temporal_blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[depth + i], attn_drop_rate, drop_rate, init_values)
            for i in range(temporal_depth)
        )
        self.temporal_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()
        self.reducer = reducer if reducer is not None else NoReduction()
        self.reducer.bind(BackboneSpec(depth, embed_dim, num_heads, (1, h, w), 1, "joint", model_name))

    def _init_weights(self) -> None:
        for p in (self.pos_embed, self.temporal_pos_embed):
            trunc_normal_(p, std=0.02)
        for p in (self.cls_token, self.temporal_cls_token):
            nn.init.normal_(p, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def check_input(self, video: Tensor) -> None:
        expected = (self.in_chans, self.num_frames, self.img_size, self.img_size)
        if video.ndim != 5 or tuple(video.shape[1:]) != expected:
            raise ValueError(
                f"{self.model_name or 'model'} expects video [B, C, T, H, W] = [B, {', '.join(map(str, expected))}], "
                f"got {list(video.shape)}"
            )

    def embed(self, video: Tensor) -> TokenState:
        """Each tubelet-frame becomes its own sample: [B*T', 1 + H'W', C] with grid (1, H', W')."""
        self.check_input(video)
        x = self.patch_embed(video)  # [B, C, T', H', W']
        b, c, t, h, w = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)  # [B*T', H'W', C]
        x = x + self.pos_embed[:, 1:]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(b * t, -1, -1)
        x = torch.cat([cls, x], dim=1)
        return TokenState.from_grid(self.pos_drop(x), (1, h, w), num_prefix=1)

    def forward_tokens(self, video: Tensor, trace: Optional[list[int]] = None) -> TokenState:
        """Spatial encoder on every frame; `trace` records tokens per video (frames x tokens per frame)."""
        t = self.grid[0]
        state = self.embed(video)
        for i, block in enumerate(self.blocks):
            if trace is not None:
                trace.append(state.num_tokens * t)
            state = self.reducer.forward_block(block, state, i)
        if trace is not None:
            trace.append(state.num_tokens * t)
        return state.replace(x=self.norm(state.x))

    def pool_frames(self, state: TokenState) -> Tensor:
        if self.global_pool == "token":
            return state.x[:, 0]
        w = state.size[:, state.num_prefix :, None]  # float32 sizes: exact weights in bf16 runs
        return ((state.x[:, state.num_prefix :] * w).sum(1) / w.sum(1)).to(state.x.dtype)

    def forward(self, video: Tensor, trace: Optional[list[int]] = None) -> Tensor:
        """video [B, C, T, H, W] -> logits [B, num_classes]; `trace` as in forward_tokens."""
        b, t = video.shape[0], self.grid[0]
        frames = self.pool_frames(self.forward_tokens(video, trace)).reshape(b, t, -1)  # [B, T', C]
        cls = self.temporal_cls_token.expand(b, -1, -1)
        x = torch.cat([cls, frames], dim=1) + self.temporal_pos_embed  # [B, 1 + T', C]
        state = TokenState.from_grid(x, (t, 1, 1), num_prefix=1)
        for block in self.temporal_blocks:
            state = block(state)
        x = self.temporal_norm(state.x)
        pooled = x[:, 0] if self.global_pool == "token" else x[:, 1:].mean(1)
        return self.head(self.head_drop(pooled))
