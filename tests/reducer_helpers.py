"""Models and clips shared by the per-strategy reducer tests (tests/test_reduce_<strategy>.py).

The invariants every reducer keeps run from tests/test_invariants.py with tests/reducer_cases.py;
each strategy's own file checks its fidelity numbers, what is particular to it and its options.
"""
from __future__ import annotations

import torch
from torch import nn

from videotok.models import create_model
from videotok.reduce import TokenState, build_reducer


def deit_s(reducer_name: str = "none", **args) -> nn.Module:
    """DeiT-S / ViT-S/16 at 224: a 1-frame, tubelet-1 joint-attention video ViT."""
    return create_model("vivit_small_patch16_224", num_frames=1, tubelet_size=1, num_classes=1000,
                        reducer=build_reducer(reducer_name, **args))


def tiny(backbone: str, name: str = "none", **args) -> nn.Module:
    """A tiny backbone (seeded weights, eval mode) with reducer `name`."""
    torch.manual_seed(0)
    return create_model(backbone, num_classes=6, reducer=build_reducer(name, **args)).eval()


def clip(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, 8, 96, 96, generator=torch.Generator().manual_seed(seed))


def tracked(model: nn.Module, video: torch.Tensor) -> tuple[TokenState, TokenState]:
    """Embedding state and final state with `source` tracked through every block."""
    state = model.embed(video)
    state = state.replace(source=torch.eye(state.num_tokens).expand(state.x.shape[0], -1, -1))
    start = state
    state = model.reducer.start(state, video)  # pixel-level strategies (rlt) act here
    for i, block in enumerate(model.blocks):
        state = model.reducer.forward_block(block, state, i)
    return start, state


def divided_blocks(model: nn.Module, video: torch.Tensor) -> set[int]:
    """Indices of the blocks that ran TimeSformer's divided attention on `video`."""
    ran: set[int] = set()
    hooks = [b.temporal_norm1.register_forward_hook(lambda *_, i=i: ran.add(i)) for i, b in enumerate(model.blocks)]
    with torch.no_grad():
        model(video)
    for h in hooks:
        h.remove()
    return ran


def sgd_losses(name: str, args: dict, steps: int = 6) -> list[float]:
    """Losses of a few SGD steps of the tiny ViViT with reducer `name` on a fixed batch."""
    model = tiny("vivit_tiny", name, **args).train()
    video, labels = clip(4, seed=2), torch.tensor([0, 1, 2, 3])
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(video), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses
