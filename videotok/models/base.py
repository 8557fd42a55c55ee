"""The video backbone base class: its docstring is the contract every backbone keeps.

One class owns what TimeSformer, ViViT model 1 and the factorised encoder share (argument checks,
tubelet embedding, CLS token and spatial positions, the blocks, reducer binding, the block loop,
pooling, the classifier, weight initialisation and input checks); a backbone adds only how its
tokens are laid out (`embed`) and, if it has one, what runs after the blocks (`forward_features`).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Optional

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn

from videotok.flops import BlockInput
from videotok.layers.block import Block
from videotok.reduce.base import BackboneSpec, Reducer
from videotok.reduce.none import NoReduction
from videotok.reduce.state import Grid, TokenState

GLOBAL_POOLS = ("token", "avg")


class PatchEmbed3d(nn.Module):
    """Video [B, C, T, H, W] -> tubelet tokens [B, C', T/kt, H/p, W/p] with one Conv3d (`proj`, as timm)."""

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, video: Tensor) -> Tensor:
        return self.proj(video)


def make_blocks(dim: int, num_heads: int, drop_path: list[float], **block_args: Any) -> nn.ModuleList:
    """One transformer block per entry of `drop_path` (its stochastic depth rate)."""
    return nn.ModuleList(Block(dim, num_heads, drop_path=rate, **block_args) for rate in drop_path)


class VideoBackbone(nn.Module):
    """A video classifier `video [B, C, T, H, W] -> logits [B, num_classes]` whose blocks carry a
    TokenState and let a reducer act at each block.

    The contract (what other code may rely on, and nothing more):
    - attributes `model_name`, `num_classes`, `in_chans`, `num_frames`, `img_size` (the input is
      [B, in_chans, num_frames, img_size, img_size]; `check_input` refuses anything else, naming the
      expected shape), `embed_dim`, `num_prefix` (1: the CLS token leads every token sequence; 0:
      no CLS token, as VideoMAE, so reducers rank tokens by the attention they receive),
      `grid` (T', H', W') of the tubelet tokens and `patch_embed.tubelet_size`. `evaluate` reads
      the shape and class attributes, `flops` builds its input from them, views default by
      `model_name`.
    - `forward(video, trace=None, blocks=None)`: logits. With a list as `trace`, the number of tokens
      per video entering each reducer-driven block, then after the last one, is appended (`flops`
      prints it); with a list as `blocks`, what each of them received, then what the last one left,
      as `flops.BlockInput` (from which evaluation costs each view).
    - `embed(video)` -> the embedded TokenState; `reducer.start(state, video)` -> the state entering
      block 0 (strategies that act on the pixels, rlt, reduce there; the others return it as it is);
      `blocks` the reducer-driven blocks, run in order as `reducer.forward_block(block, state, i)`;
      `forward_tokens` does exactly that and applies `norm`.
    - `reducer`: the one reducer, bound once at construction to `spec` (a BackboneSpec: depth,
      width, heads, the grid entering the blocks, prefix count, attention kind, model name), which is
      all a reducer may know about the backbone; its parameters are the backbone's `reducer.*`.
    - parameter names follow timm's ViT (`patch_embed.proj`, `cls_token`, `pos_embed`,
      `blocks.N.*`, `norm`, `head`), so image checkpoints load by name (models/pretrained.py).

    The arguments every backbone shares are these; a subclass adds its own and hooks in with
    `add_embeddings` (the CLS token and positions, before the blocks), `build_neck` (after them),
    `embed` and `forward_features`. `position_params` / `token_params` name the parameters
    initialised like positions / like the CLS token (those a backbone lacks are skipped); with
    `frames_as_samples` the blocks see each tubelet-frame as its own sample. `norm_eps` and
    `act_layer` ("gelu" or "gelu_tanh") and `cos_attn` (cosine attention with a learned scale,
    layers/attention.py) are there to reproduce published checkpoints exactly.
    """

    num_prefix = 1
    frames_as_samples = False
    position_params: tuple[str, ...] = ("pos_embed",)
    token_params: tuple[str, ...] = ("cls_token",)

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
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        init_values: Optional[float] = None,
        global_pool: str = "token",
        proportional_attn: bool = True,
        reducer: Optional[Reducer] = None,
        model_name: str = "",
        block_attention: str = "joint",
        neck_depth: int = 0,
        norm_eps: float = 1e-6,
        act_layer: str = "gelu",
        cos_attn: bool = False,
    ) -> None:
        super().__init__()
        if global_pool not in GLOBAL_POOLS:
            raise ValueError(f"global_pool={global_pool!r}: choose 'token' or 'avg'")
        if global_pool == "token" and self.num_prefix == 0:
            raise ValueError(f"global_pool='token' pools the CLS token, but {model_name or type(self).__name__} has "
                             "none; use global_pool='avg' (the mean of the tokens)")
        if img_size % patch_size or num_frames % tubelet_size:
            raise ValueError(
                f"img_size {img_size} must divide by patch_size {patch_size} and num_frames {num_frames} "
                f"by tubelet_size {tubelet_size}"
            )
        self.model_name, self.num_classes = model_name, num_classes
        self.img_size, self.num_frames, self.in_chans = img_size, num_frames, in_chans
        self.global_pool, self.embed_dim = global_pool, embed_dim
        self.depth, self.num_heads, self.block_attention = depth, num_heads, block_attention
        t, h, w = self.grid = (num_frames // tubelet_size, img_size // patch_size, img_size // patch_size)
        self.block_grid: Grid = (1, h, w) if self.frames_as_samples else self.grid

        self.patch_embed = PatchEmbed3d(patch_size, tubelet_size, in_chans, embed_dim)
        self.add_embeddings()
        self.pos_drop = nn.Dropout(drop_rate)
        rates = torch.linspace(0, drop_path_rate, depth + neck_depth, device="cpu").tolist()
        block_args = dict(mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, attn_drop=attn_drop_rate, proj_drop=drop_rate,
                          init_values=init_values, norm_eps=norm_eps, act_layer=act_layer, cos_attn=cos_attn)
        self.blocks = make_blocks(embed_dim, num_heads, rates[:depth], divided=block_attention == "divided",
                                  proportional=proportional_attn, **block_args)
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        self.build_neck(rates[depth:], block_args)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights()
        self.reducer = reducer if reducer is not None else NoReduction()
        self.reducer.bind(self.spec)

    def add_embeddings(self) -> None:
        """The CLS token and the image ViT's spatial positions `pos_embed` [1, 1 + H'W', C] (timm's
        layout); a subclass adds to them or replaces them."""
        h, w = self.grid[1:]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + h * w, self.embed_dim))

    def build_neck(self, drop_path: list[float], block_args: dict) -> None:
        """Modules between the reducer-driven blocks and the head, `len(drop_path)` blocks deep
        (none here)."""

    @contextlib.contextmanager
    def reducer_swapped(self, reducer: Reducer) -> Iterator["VideoBackbone"]:
        """This backbone with `reducer` (bound to its `spec`) in place of its own for the body, then
        its own back. The guest follows the host's train()/eval() mode while in place and gets its
        own mode back afterwards, so what a forward computes never depends on the mode the guest was
        built or left in (a comparison's training-free rows, a GFLOPs count with the reducer off)."""
        own, guest_mode = self.reducer, reducer.training
        self.reducer = reducer.train(self.training)
        try:
            yield self
        finally:
            self.reducer = own
            reducer.train(guest_mode)

    @property
    def spec(self) -> BackboneSpec:
        return BackboneSpec(self.depth, self.embed_dim, self.num_heads, self.block_grid, self.num_prefix,
                            self.block_attention, self.model_name)

    def init_weights(self) -> None:
        """From scratch: positions trunc-normal, CLS tokens near zero, linears trunc-normal, norms
        identity; TimeSformer's temporal branch starts as identity except in the first block."""
        for name in self.position_params:
            if isinstance(getattr(self, name, None), nn.Parameter):
                trunc_normal_(getattr(self, name), std=0.02)
        for name in self.token_params:
            if isinstance(getattr(self, name, None), nn.Parameter):
                nn.init.normal_(getattr(self, name), std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
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

    def patch_tokens(self, video: Tensor) -> Tensor:
        """Checked video -> tubelet tokens [B, T', H'W', C] (t-major), no positions yet."""
        self.check_input(video)
        x = self.patch_embed(video)  # [B, C, T', H', W']
        b, c, t, h, w = x.shape
        return x.flatten(2).transpose(1, 2).reshape(b, t, h * w, c)  # [B, T', H'W', C]

    def with_cls(self, x: Tensor, grid: Grid) -> TokenState:
        """Patch tokens [B', N, C] of `grid` -> the TokenState [B', 1 + N, C] with the CLS token first."""
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
        return TokenState.from_grid(self.pos_drop(torch.cat([cls, x], dim=1)), grid, num_prefix=self.num_prefix,
                                    places=self.places_tokens)

    @property
    def places_tokens(self) -> bool:
        """Whether merged tokens are placed at their patches (divided attention reads TokenState.owner)."""
        return any(block.divided for block in self.blocks)

    def embed(self, video: Tensor) -> TokenState:
        raise NotImplementedError

    def forward_tokens(self, video: Tensor, trace: Optional[list[int]] = None,
                       blocks: Optional[list[BlockInput]] = None) -> TokenState:
        """`embed`, the reducer's `start`, then every block through the reducer, then `norm`; `trace`,
        `blocks` as in `forward`."""
        state = self.reducer.start(self.embed(video), video)
        per_video = self.grid[0] // self.block_grid[0]  # samples the blocks see per video (frames, or 1)
        for i, block in enumerate(self.blocks):
            _record(state, per_video, trace, blocks)
            state = self.reducer.forward_block(block, state, i)
        _record(state, per_video, trace, blocks)
        return state.replace(x=self.norm(state.x))

    def pool(self, state: TokenState) -> Tensor:
        """[B, N, C] -> [B, C]: the CLS token, or the size-weighted mean of the other tokens (the mean
        over the original patches; weighted by `mass` where a strategy sets one; padding weighs 0)."""
        if self.global_pool == "token":
            return state.x[:, 0]
        w = state.weight[:, state.num_prefix :, None]  # float32 sizes: exact weights in bf16 runs
        return ((state.x[:, state.num_prefix :] * w).sum(1) / w.sum(1)).to(state.x.dtype)

    def forward_features(self, video: Tensor, trace: Optional[list[int]] = None,
                         blocks: Optional[list[BlockInput]] = None) -> Tensor:
        """video -> pooled features [B, C]."""
        return self.pool(self.forward_tokens(video, trace, blocks))

    def forward(self, video: Tensor, trace: Optional[list[int]] = None,
                blocks: Optional[list[BlockInput]] = None) -> Tensor:
        """video [B, C, T, H, W] -> logits [B, num_classes]; `trace` collects tokens per block, `blocks`
        what each block received."""
        return self.head(self.head_drop(self.forward_features(video, trace, blocks)))


def _record(state: TokenState, per_video: int, trace: Optional[list[int]], blocks: Optional[list[BlockInput]]) -> None:
    if trace is not None:
        trace.append(state.num_tokens * per_video)
    if blocks is not None:
        blocks.append(BlockInput.of(state, per_video))
