"""GFLOPs by running the model once, in the papers' convention (one multiply-add = one FLOP).

Counting a real forward pass (torch's FlopCounterMode) instead of a formula means a reduced model is
counted truthfully: fewer tokens after each merge, plus the matching cost of the reducer itself.

Where the token count depends on the clip (a per-frame padding that follows the content, or a
content-aware reducer), evaluation needs the cost of every view without counting a second forward:
a view costs the counted blank-clip figure plus what a formula over the tokens each block saw
says it costs more or less (`Cost.change`). Parts the formula does not model (a reducer's
own matching, the neck) cancel, since they are in both the counted figure and the anchor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from videotok.layers.placement import frame_widths
from videotok.reduce.state import Grid, TokenState

aten = torch.ops.aten


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    # torch registers formulas for the CUDA kernels only; the CPU kernel does the same two matmuls.
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_EXTRA_FORMULAS = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}


@dataclass
class BlockInput:
    """What one reducer-driven block received, kept by reference (no copy, no work) until it is
    costed. `samples_per_video`: how many samples the blocks see per video (T' for the factorised
    encoder, else 1)."""

    size: Tensor  # [B', N], 0 for padding
    pos: Tensor  # [B', N, 3]
    owner: Optional[Tensor]  # [B', T, H, W]
    grid: Optional[Grid]
    num_prefix: int
    samples_per_video: int

    @classmethod
    def of(cls, state: TokenState, samples_per_video: int) -> "BlockInput":
        return cls(state.size, state.pos, state.owner, state.grid, state.num_prefix, samples_per_video)

    @property
    def tokens_per_video(self) -> int:
        """Token slots per video (padding included), the number `videotok flops` prints."""
        return self.size.shape[1] * self.samples_per_video

    def tokens(self) -> Tensor:
        """[B'] tokens each sample really holds (prefix included, padding not)."""
        return (self.size > 0).sum(dim=1)


@dataclass
class Cost:
    gflops: float  # per view (one clip), multiply-adds / 1e9
    params_m: float
    tokens_per_block: list[int]  # tokens entering each block, then after the last one
    counted_gflops: float = 0.0  # `count_gflops` on the same clip: the anchor of `change`

    def change(self, model: nn.Module, blocks: list[BlockInput]) -> Tensor:
        """[B] how many GFLOPs more (or fewer) each video of a batch whose blocks left `blocks` costs
        than this counted clip, by the formula over that video's own token counts (exactly 0 where
        the counts are the same)."""
        return count_gflops(model, blocks) - self.counted_gflops



def measure_cost(model: nn.Module, batch: int = 1, video: Optional[Tensor] = None) -> Cost:
    """Run `model` once on `video` (default: a zero clip of its own input shape, `batch` of them);
    return GFLOPs per view and tokens."""
    if video is None:
        shape = (batch, model.in_chans, model.num_frames, model.img_size, model.img_size)
        video = torch.zeros(shape, device=next(model.parameters()).device)
    blocks: list[BlockInput] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter:
            model(video, blocks=blocks)
    finally:
        model.train(was_training)
    views = video.shape[0]
    flops = counter.get_total_flops()
    params = sum(p.numel() for p in model.parameters())
    return Cost(gflops=flops / 2 / 1e9 / views, params_m=params / 1e6,
                tokens_per_block=[b.tokens_per_video for b in blocks],
                counted_gflops=float(count_gflops(model, blocks).mean()))


def full_token_cost(model: nn.Module) -> Cost:
    """The cost of `model` with its reducer switched off: the same backbone and weights, every token
    kept (what a reducer's savings are measured against)."""
    from videotok.reduce.none import NoReduction

    baseline = NoReduction()
    baseline.bind(model.spec)
    with model.reducer_swapped(baseline):
        return measure_cost(model)


def count_gflops(model: nn.Module, blocks: list[BlockInput]) -> Tensor:
    """[B] GFLOPs per video of the reducer-driven blocks, from the tokens each block received
    (`blocks[i]`) and kept after its reduction (`blocks[i + 1]`), each video costed as if alone
    (its own token count and per-frame width, not the batch's padding).

    Per block, with C the width, p the prefix and n the patch tokens: joint attention 4nC² + 2n²C;
    TimeSformer's divided attention, temporal 5nC² (qkv, proj, temporal_fc) + 2·places·T²·C, and
    spatial on the grid T·(4(p+HW)C² + 2(p+HW)²C) (every frame projects its copy of the prefix), on
    placed tokens 4(p+n)C² + T·2(p+m)²C (projections once per token; m the fullest frame's tokens,
    the width every frame is padded to); the MLP 2·n_out·C·hidden."""
    total: Optional[Tensor] = None
    for block, entering, leaving in zip(model.blocks, blocks, blocks[1:]):
        c = block.norm1.normalized_shape[0]
        n_in, n_out = entering.tokens().double(), leaving.tokens().double()
        macs = 2 * n_out * c * block.mlp.fc1.out_features
        p = entering.num_prefix
        if block.divided and entering.grid is not None:
            t, h, w = entering.grid
            macs = macs + _temporal(c, n_in - p, t, h * w) + t * (4 * (p + h * w) * c * c + 2 * (p + h * w) ** 2 * c)
        elif block.divided and entering.owner is not None and block.divided_after_merge:
            t, h, w = entering.owner.shape[1:]
            real = entering.size[:, p:] > 0  # padding (a content-aware reducer's) joins no frame
            width = frame_widths(entering.owner, entering.pos[:, p:], real).double()
            macs = macs + _temporal(c, n_in - p, t, h * w) + 4 * n_in * c * c + t * 2 * (p + width) ** 2 * c
        else:
            macs = macs + 4 * n_in * c * c + 2 * n_in * n_in * c
        per_video = macs.reshape(-1, entering.samples_per_video).sum(dim=1)  # [B'] -> [B]
        total = per_video if total is None else total + per_video
    if total is None:
        raise ValueError("`blocks` holds no block")
    return total / 1e9


def _temporal(c: int, patches: Tensor, frames: int, places: int) -> Tensor:
    """Divided attention's temporal half: projections per patch token, attention over T per place."""
    return 5 * patches * c * c + 2 * places * frames * frames * c
