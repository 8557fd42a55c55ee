"""Optimiser and learning-rate schedule of the published recipes: AdamW (or SGD) without weight
decay on norms, biases, embeddings and learned tokens; linear warm-up then cosine decay per step."""
from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

# Parameters that are positions or learned tokens, not weights: decaying them hurts (ViT, DeiT).
NO_DECAY_NAMES = ("cls_token", "pos_embed", "time_embed", "centres")
OPTIMIZERS = ("adamw", "sgd")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: decayed matrices, and undecayed norms, biases, embeddings and tokens."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim <= 1 or any(key in name for key in NO_DECAY_NAMES)
        (no_decay if skip else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(
    groups: Iterable[dict], name: str, lr: float, momentum: float = 0.9
) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    raise ValueError(f"optimizer={name!r}: choose one of {', '.join(OPTIMIZERS)}")


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float):
    """Multiplier of the base lr at step s: linear warm-up from 1/warmup, then cosine to min_ratio."""
    total_steps = max(1, total_steps)
    warmup_steps = min(max(0, warmup_steps), total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
