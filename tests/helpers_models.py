"""Helpers for tests that compare two implementations of one model."""
from __future__ import annotations

import torch


def perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Noise on every parameter, so zero biases and unit norms of a fresh init cannot hide a swap."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    return model.eval()
