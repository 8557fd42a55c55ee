"""GFLOPs by running the model once, in the papers' convention (one multiply-add = one FLOP).

Counting a real forward pass (torch's FlopCounterMode) instead of a formula means a reduced model is
counted truthfully: fewer tokens after each merge, plus the matching cost of the reducer itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

aten = torch.ops.aten


def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    # torch registers formulas for the CUDA kernels only; the CPU kernel does the same two matmuls.
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_EXTRA_FORMULAS = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}


@dataclass
class Cost:
    gflops: float  # per view (one clip), multiply-adds / 1e9
    params_m: float
    tokens_per_block: list[int]  # tokens entering each block, then after the last one


def measure_cost(model: nn.Module, batch: int = 1) -> Cost:
    """Run `model` once on a zero clip of its own input shape; return GFLOPs per view and tokens."""
    shape = (batch, model.in_chans, model.num_frames, model.img_size, model.img_size)
    device = next(model.parameters()).device
    video = torch.zeros(shape, device=device)
    trace: list[int] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS) as counter:
            model(video, trace=trace)
    finally:
        model.train(was_training)
    flops = counter.get_total_flops()
    params = sum(p.numel() for p in model.parameters())
    return Cost(gflops=flops / 2 / 1e9 / batch, params_m=params / 1e6, tokens_per_block=trace)


def full_token_cost(model: nn.Module) -> Cost:
    """The cost of `model` with its reducer switched off: the same backbone and weights, every token
    kept (what a reducer's savings are measured against)."""
    from videotok.reduce.none import NoReduction

    reducer = model.reducer
    baseline = NoReduction()
    baseline.bind(model.spec)
    model.reducer = baseline
    try:
        return measure_cost(model)
    finally:
        model.reducer = reducer
