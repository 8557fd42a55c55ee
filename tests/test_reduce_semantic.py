"""`semantic` (STViT semantic tokens): fidelity number, token grids, pooling, centres and options.

The invariants every reducer keeps run from tests/test_invariants.py (rows in tests/reducer_cases.py).
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from reducer_helpers import clip, deit_s, divided_blocks, sgd_losses, tiny
from videotok.flops import measure_cost
from videotok.models import create_model
from videotok.reduce import TokenState, build_reducer
from videotok.reduce.semantic import cell_index, parse_tokens


def test_deit_s_semantic_fidelity() -> None:
    """16 semantic tokens, 4 ordinary + 2 generating + 6 semantic blocks: 1.91 GFLOPs."""
    cost = measure_cost(deit_s("semantic", layer=4, tokens="1x4x4"))
    assert cost.gflops == pytest.approx(1.91, rel=0.03)
    assert cost.tokens_per_block == [197] * 5 + [17] * 8


def test_semantic_default_tokens_follow_the_grid() -> None:
    """tokens left unset: 2x4x4 where the blocks see several frames, 1x4x4 where they see one."""
    assert deit_s("semantic", layer=4).reducer.tokens == (1, 4, 4)
    assert tiny("timesformer_tiny", "semantic", layer=2).reducer.tokens == (2, 4, 4)
    assert tiny("vivit_tiny", "semantic", layer=2, tokens="auto").reducer.tokens == (2, 4, 4)
    assert tiny("vivit_fe_tiny", "semantic", layer=2).reducer.tokens == (1, 4, 4)
    small = create_model("vivit_tiny", img_size=48, reducer=build_reducer("semantic", layer=2))  # 3x3 patches
    assert small.reducer.tokens == (2, 3, 3)


def test_semantic_cells_partition_the_grid() -> None:
    index = cell_index((1, 14, 14), (1, 4, 4), torch.device("cpu")).reshape(14, 14)
    rows = torch.bincount(index[:, 0] // 4, minlength=4)  # patches per cell row along H
    assert rows.tolist() == [4, 3, 4, 3]
    assert torch.bincount(index.reshape(-1)).sum() == 196
    even = cell_index((8, 4, 4), (2, 2, 2), torch.device("cpu")).reshape(8, 4, 4)
    assert even[3, 1, 1] == 0 and even[4, 0, 2] == 5  # frames 0-3 -> cell t 0, 4-7 -> 1


def test_semantic_initial_tokens_pool_their_cells() -> None:
    torch.manual_seed(0)
    reducer = build_reducer("semantic", tokens="2x2x2", pool="max")
    x = torch.randn(2, 1 + 4 * 4 * 4, 8)
    state = TokenState.from_grid(x, (4, 4, 4), num_prefix=1, track_source=True)
    cells = reducer.initial_tokens(state)
    patches = x[:, 1:].reshape(2, 2, 2, 2, 2, 2, 2, 8)  # [B, ct, 2, ch, 2, cw, 2, C]
    expected = patches.amax(dim=(2, 4, 6)).reshape(2, 8, 8)
    torch.testing.assert_close(cells.x[:, 1:], expected)
    torch.testing.assert_close(cells.x[:, 0], x[:, 0])  # CLS untouched
    assert cells.size[0].tolist() == [1.0] + [8.0] * 8 and cells.grid is None and cells.merged
    torch.testing.assert_close(cells.pos[0, 1], torch.tensor([0.5, 0.5, 0.5]))
    avg = build_reducer("semantic", tokens="2x2x2", pool="avg").initial_tokens(state)
    torch.testing.assert_close(avg.x[:, 1:], patches.mean(dim=(2, 4, 6)).reshape(2, 8, 8))


def test_semantic_layers_and_backbones() -> None:
    video = clip(2)
    # TimeSformer: blocks before `layer` divided, the generating and semantic blocks joint
    model = tiny("timesformer_tiny", "semantic", layer=2, tokens="2x2x2")
    assert divided_blocks(model, video) == {0, 1}
    trace: list[int] = []
    with torch.no_grad():
        model(video, trace=trace)
    assert trace == [289, 289, 289, 9, 9, 9, 9]
    # ViViT model 2: per-frame semantic tokens (the spatial blocks see one frame)
    fe = tiny("vivit_fe_tiny", "semantic", layer=1, tokens="1x2x2")
    trace = []
    with torch.no_grad():
        out = fe(video, trace=trace)
    assert out.shape == (2, 6) and trace == [4 * 37, 4 * 37, 4 * 5, 4 * 5, 4 * 5, 4 * 5, 4 * 5]


def test_semantic_average_pooling_head() -> None:
    """global_pool="avg" pools the semantic tokens (size-weighted), batch-independently."""
    torch.manual_seed(0)
    model = create_model("vivit_tiny", num_classes=6, global_pool="avg",
                         reducer=build_reducer("semantic", layer=2, tokens="2x2x2")).eval()
    video = clip(3)
    with torch.no_grad():
        together = model(video)
        alone = model(video[1:2])
        state = model.forward_tokens(video)
    w = state.size[:, 1:, None]
    pooled = (state.x[:, 1:] * w).sum(1) / w.sum(1)
    torch.testing.assert_close(together, model.head(pooled))
    torch.testing.assert_close(alone, together[1:2], atol=1e-5, rtol=1e-4)


def test_semantic_global_centres_train() -> None:
    model = tiny("vivit_tiny", "semantic", layer=2, tokens="2x2x2").train()
    centres = model.reducer.centres
    assert centres.shape == (1, 8, 96) and 0 < float(centres.detach().std()) < 0.05  # initialised small
    assert any(p is centres for p in model.parameters())
    nn.functional.cross_entropy(model(clip(2)), torch.tensor([0, 3])).backward()
    assert float(centres.grad.abs().sum()) > 0
    assert model.reducer.adds_parameters
    without = tiny("vivit_tiny", "semantic", layer=2, tokens="2x2x2", global_centres=False)
    assert without.reducer.centres is None
    # without the centres it adds nothing, so it runs training-free (compare, listing, validate)
    assert not without.reducer.adds_parameters and not list(without.reducer.parameters())


@pytest.mark.parametrize(
    "backbone,args,match",
    [
        ("vivit_fe_tiny", {"tokens": "2x2x2", "layer": 1}, "one frame"),
        ("vivit_tiny", {"tokens": "8x2x2", "layer": 1}, "along T"),
        ("vivit_tiny", {"tokens": "1x7x2", "layer": 1}, "along H"),
        ("vivit_tiny", {"tokens": "1x2x2", "layer": 5}, "layer=5"),
    ],
)
def test_semantic_rejects_what_cannot_run(backbone: str, args: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(backbone, "semantic", **args)


def test_semantic_argument_errors() -> None:
    assert parse_tokens("2x4x4") == (2, 4, 4)
    with pytest.raises(ValueError, match="TxHxW"):
        build_reducer("semantic", tokens="4x4")
    with pytest.raises(ValueError, match="pool="):
        build_reducer("semantic", pool="median")


@pytest.mark.parametrize("args", [{"layer": 2, "tokens": "2x2x2"}])
def test_a_few_sgd_steps_reduce_the_loss(args: dict) -> None:
    losses = sgd_losses("semantic", args)
    assert losses[-1] < 0.7 * losses[0], losses
