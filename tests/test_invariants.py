"""The invariants every reducer must keep (DESIGN.md), for every registered reducer on every backbone.

Arguments come from tests/reducer_cases.py; a reducer without a row there is skipped with a reason.
Invariants: the no-op setting reproduces `none`; sizes sum to N0; CLS stays first and alone in slot 0
where there is one (VideoMAE has none, and no token may become a prefix); positions stay centres of
mass; proportional attention with unit sizes is plain attention; a sample's output does not depend on
the rest of its batch; gradients reach every parameter (except the temporal branch of TimeSformer
blocks that ran joint attention after the grid was gone, asserted exactly).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Iterator

import pytest
import torch
from torch import nn

from reducer_cases import BACKBONES, CASES, Setting
from videotok.layers.attention import Attention
from videotok.models import create_model
from videotok.reduce import build_reducer, list_reducers

NUM_CLASSES = 6
TEMPORAL_BRANCH = ("temporal_norm1", "temporal_attn", "temporal_fc")


def _skip(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.skip(reason=reason)


def _no_row(name: str) -> str:
    return f"reducer {name!r} has no row in tests/reducer_cases.py yet; add its no-op and active settings there"


def noop_params() -> Iterator:
    for name in list_reducers():
        case = CASES.get(name)
        for backbone in BACKBONES:
            pid = f"{name}-{backbone}"
            if case is None:
                yield pytest.param(name, None, backbone, id=pid, marks=_skip(_no_row(name)))
            elif case.noop is None:
                yield pytest.param(name, None, backbone, id=pid, marks=_skip(case.noop_reason or f"{name} has no no-op setting"))
            elif backbone in case.noop.unsupported:
                yield pytest.param(name, None, backbone, id=pid, marks=_skip(case.noop.unsupported[backbone]))
            else:
                yield pytest.param(name, case.noop, backbone, id=pid)


def active_params() -> Iterator:
    for name in list_reducers():
        case = CASES.get(name)
        for backbone in BACKBONES:
            if case is None or not case.active:
                reason = _no_row(name) if case is None else f"{name} has no active setting in tests/reducer_cases.py"
                yield pytest.param(name, None, backbone, id=f"{name}-{backbone}", marks=_skip(reason))
                continue
            for setting in case.active:
                pid = f"{name}[{setting.label()}]-{backbone}"
                marks = [_skip(setting.unsupported[backbone])] if backbone in setting.unsupported else []
                yield pytest.param(name, setting, backbone, id=pid, marks=marks)


@lru_cache(maxsize=None)
def base_weights(backbone: str) -> dict[str, torch.Tensor]:
    """Weights of the full-token model, with TimeSformer's zero-initialised temporal_fc made non-zero so
    the temporal branch really contributes (a zero branch would hide errors in it)."""
    torch.manual_seed(0)
    model = create_model(backbone, num_classes=NUM_CLASSES)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "temporal_fc" in name:
                p.normal_(0, 0.02)
    return {k: v.clone() for k, v in model.state_dict().items()}


def build(backbone: str, name: str, args: dict) -> nn.Module:
    """The backbone with reducer `name`, carrying exactly the baseline's weights."""
    model = create_model(backbone, num_classes=NUM_CLASSES, reducer=build_reducer(name, **args))
    missing, unexpected = model.load_state_dict(base_weights(backbone), strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith("reducer.") for k in missing), missing  # only the reducer's own parameters
    return model


def clip(batch: int, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 8, 96, 96, generator=gen)


def run_tracked(model: nn.Module, video: torch.Tensor):
    """forward_tokens with `source` tracking on: returns the state after the last block and N0."""
    state = model.embed(video)
    b, n0 = state.x.shape[:2]
    state = state.replace(source=torch.eye(n0).expand(b, -1, -1))
    start = state
    state = model.reducer.start(state, video)  # pixel-level strategies (rlt) act here
    for i, block in enumerate(model.blocks):
        state = model.reducer.forward_block(block, state, i)
    return start, state


@pytest.mark.parametrize("name,setting,backbone", list(noop_params()))
def test_noop_setting_reproduces_baseline(name: str, setting: Setting, backbone: str) -> None:
    video = clip(2)
    with torch.no_grad():
        expected = build(backbone, "none", {}).eval()(video)
        trace: list[int] = []
        got = build(backbone, name, setting.args).eval()(video, trace=trace)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert len(set(trace)) == 1, f"the no-op setting changed the token count: {trace}"


@pytest.mark.parametrize("name,setting,backbone", list(active_params()))
def test_sizes_cls_and_positions(name: str, setting: Setting, backbone: str) -> None:
    model = build(backbone, name, setting.args).eval()
    with torch.no_grad():
        start, end = run_tracked(model, clip(2))
    n0, b = start.num_tokens, start.x.shape[0]  # b: clips, or clips x frames for the factorised encoder
    source, size = end.source, end.size  # [B, N, N0], [B, N]
    real = torch.ones_like(size, dtype=torch.bool) if end.valid is None else end.valid  # padding (rlt): size 0
    if end.padded:  # padding holds nothing, and only padding has size 0
        assert float(source[~real].abs().sum()) == 0.0 and bool((size[~real] == 0).all())
    if setting.reduces:
        assert end.num_tokens < n0, f"{name} {setting.args} did not reduce on {backbone}"
        assert end.merged
    # the prefix is the backbone's (CLS, or none for VideoMAE); a CLS token stays first and alone:
    # slot 0 holds exactly original token 0, no other slot holds any of it
    assert end.num_prefix == start.num_prefix == model.num_prefix
    if model.num_prefix == 1:
        torch.testing.assert_close(source[:, 0], torch.eye(n0)[0].expand(b, -1))
        assert float(source[:, 1:, 0].abs().max()) == 0.0
    # sizes count the original tokens each token holds
    torch.testing.assert_close(source.sum(-1), size)
    if setting.conserves_size:
        torch.testing.assert_close(size.sum(1), torch.full((b,), float(n0)))
        torch.testing.assert_close(source.sum(1), torch.ones(b, n0))  # every original token, exactly once
    else:  # discarding modes: nothing counted twice, some patches gone
        assert bool((source.sum(1) <= 1 + 1e-5).all()) and float(size.sum(1).max()) <= n0
    assert bool((size[real] >= 1 - 1e-5).all()), "a token stands for less than one original token"
    # positions stay the centre of mass of the original patches
    expected_pos = (source @ start.pos) / size.clamp_min(1e-12).unsqueeze(-1)
    torch.testing.assert_close(end.pos[real], expected_pos[real], atol=1e-4, rtol=1e-5)
    if end.grid is not None:  # a grid claim must match the token count
        t, h, w = end.grid
        assert end.num_tokens == end.num_prefix + t * h * w
    if end.frames is not None:
        assert end.num_patches % end.frames == 0


@pytest.mark.parametrize("name,setting,backbone", list(active_params()))
def test_batch_independence(name: str, setting: Setting, backbone: str) -> None:
    model = build(backbone, name, setting.args).eval()
    video = clip(3)
    with torch.no_grad():
        together = model(video)
        alone = model(video[1:2])
    torch.testing.assert_close(alone, together[1:2], atol=1e-5, rtol=1e-4)


def _joint_temporal_params(model: nn.Module, divided_ran: set[int]) -> set[str]:
    """Temporal-branch parameters of divided blocks that never ran divided attention."""
    unused = set()
    for i, block in enumerate(model.blocks):
        if getattr(block, "divided", False) and i not in divided_ran:
            unused |= {f"blocks.{i}.{n}" for n, _ in block.named_parameters() if n.startswith(TEMPORAL_BRANCH)}
    return unused


@pytest.mark.parametrize("name,setting,backbone", list(active_params()))
def test_gradients_reach_every_parameter(name: str, setting: Setting, backbone: str) -> None:
    """Every parameter gets a finite gradient, except exactly the temporal branch of TimeSformer blocks
    that ran joint attention because an earlier reduction removed the grid: those blocks reuse only
    their spatial attention, so their temporal_norm1 / temporal_attn / temporal_fc are dead weight
    for that reducer (a real cost of grid-dropping reducers on divided backbones)."""
    torch.manual_seed(0)
    model = build(backbone, name, setting.args).train()
    divided_ran: set[int] = set()
    for i, block in enumerate(model.blocks):
        if hasattr(block, "temporal_attn"):
            block.temporal_norm1.register_forward_hook(lambda *_, i=i: divided_ran.add(i))
    logits = model(clip(2))
    nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    expected_unused = _joint_temporal_params(model, divided_ran)
    no_grad = {n for n, p in model.named_parameters() if p.requires_grad and p.grad is None}
    allowed = {n for n in no_grad if any(re.search(rx, n) for rx in setting.unused_params)}
    assert no_grad - allowed == expected_unused
    for n, p in model.named_parameters():
        if p.grad is not None:
            assert bool(torch.isfinite(p.grad).all()), f"non-finite gradient in {n}"


@pytest.mark.parametrize("backbone", BACKBONES)
def test_proportional_attention_with_unit_sizes_is_plain(backbone: str) -> None:
    """A whole forward with `merged` forced on and all sizes 1 equals the plain forward (divided
    temporal + spatial attention and joint attention alike)."""
    model = build(backbone, "none", {}).eval()
    video = clip(2)
    with torch.no_grad():
        state = model.embed(video)
        plain, proportional = state, state.replace(merged=True)
        for block in model.blocks:
            plain, proportional = block(plain), block(proportional)
    assert proportional.merged and not plain.merged
    torch.testing.assert_close(proportional.x, plain.x, atol=1e-5, rtol=1e-5)


def test_attention_with_unit_sizes_is_plain_attention() -> None:
    torch.manual_seed(0)
    attn = Attention(48, num_heads=4).eval()
    x = torch.randn(3, 17, 48)
    with torch.no_grad():
        plain, _ = attn(x, None)
        unit, _ = attn(x, torch.ones(3, 17))
        doubled, _ = attn(x, torch.full((3, 17), 2.0))  # equal sizes cancel in the softmax too
    torch.testing.assert_close(unit, plain, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(doubled, plain, atol=1e-6, rtol=1e-6)
