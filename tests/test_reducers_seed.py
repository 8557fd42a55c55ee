"""The seed strategies (`semantic`, `crucial_merge`, `cross_frame`): fidelity numbers, what is
particular to each, and a training sanity check.

The invariants shared by every reducer (no-op = baseline, sizes, CLS first, positions, batch
independence, gradients) run from tests/test_invariants.py with the rows in tests/reducer_cases.py.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from videotok.flops import measure_cost
from videotok.models import create_model
from videotok.reduce import AttnInfo, TokenState, build_reducer
from videotok.reduce.cross_frame import cross_frame_plan, frame_merge_plan
from videotok.reduce.crucial_merge import crucial_merge_plan, parse_scales
from videotok.reduce.match import apply_plan
from videotok.reduce.semantic import cell_index, parse_tokens


def deit_s(reducer_name: str = "none", **args) -> nn.Module:
    """DeiT-S / ViT-S/16 at 224: a 1-frame, tubelet-1 joint-attention video ViT."""
    return create_model("vivit_small_patch16_224", num_frames=1, tubelet_size=1, num_classes=1000,
                        reducer=build_reducer(reducer_name, **args))


def tiny(backbone: str, name: str = "none", seed: int = 0, **args) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(backbone, num_classes=6, reducer=build_reducer(name, **args)).eval()


def clip(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, 8, 96, 96, generator=torch.Generator().manual_seed(seed))


def tracked(model: nn.Module, video: torch.Tensor) -> tuple[TokenState, TokenState]:
    """Embedding state and final state with `source` tracked through every block."""
    state = model.embed(video)
    state = state.replace(source=torch.eye(state.num_tokens).expand(state.x.shape[0], -1, -1))
    start = state
    for i, block in enumerate(model.blocks):
        state = model.reducer.forward_block(block, state, i)
    return start, state


def divided_blocks(model: nn.Module, video: torch.Tensor) -> set[int]:
    """Indices of the blocks that ran TimeSformer's divided attention on `video`."""
    ran: set[int] = set()
    hooks = [b.temporal_attn.register_forward_hook(lambda *_, i=i: ran.add(i)) for i, b in enumerate(model.blocks)]
    with torch.no_grad():
        model(video)
    for h in hooks:
        h.remove()
    return ran


# --- fidelity numbers (DESIGN.md) -------------------------------------------------------------------


def test_deit_s_semantic_fidelity() -> None:
    """16 semantic tokens, 4 ordinary + 2 generating + 6 semantic blocks: 1.91 GFLOPs."""
    cost = measure_cost(deit_s("semantic", layer=4, tokens="1x4x4"))
    assert cost.gflops == pytest.approx(1.91, rel=0.03)
    assert cost.tokens_per_block == [197] * 5 + [17] * 8


def test_deit_s_crucial_merge_fidelity() -> None:
    cost = measure_cost(deit_s("crucial_merge", keep_rate=0.7, layers="3,6,9"))
    assert 2.9 <= cost.gflops <= 3.3
    # ceil(0.7 n) crucial tokens stay, everything else is merged into them: 196 -> 138 -> 97 -> 68
    assert cost.tokens_per_block == [197] * 4 + [139] * 3 + [98] * 3 + [69] * 3


# --- semantic ---------------------------------------------------------------------------------------


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
    without = tiny("vivit_tiny", "semantic", layer=2, tokens="2x2x2", global_centres=False)
    assert without.reducer.centres is None


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


# --- crucial_merge ----------------------------------------------------------------------------------


def test_crucial_merge_plan_merges_into_the_most_similar_crucial_token() -> None:
    # tokens: CLS, a, b, c, d; a and c are crucial; b looks like c, d looks like a
    keys = torch.tensor([[[0.0, 0, 1], [1, 0, 0], [0, 1, 0.1], [0, 1, 0], [1, 0.1, 0]]])
    importance = torch.tensor([[0.5, 0.4, 0.05, 0.3, 0.1]])
    plan = crucial_merge_plan(importance, keys, k=2, num_prefix=1)
    assert plan.dest.tolist() == [[0, 1, 2, 2, 1]] and plan.num_out == 3
    x = torch.arange(15, dtype=torch.float32).reshape(1, 5, 3)
    out = apply_plan(TokenState.from_grid(x, (1, 1, 4), num_prefix=1), plan)
    # d joins a, weighted by size x importance: (0.4 a + 0.1 d) / 0.5
    torch.testing.assert_close(out.x[0, 1], (0.4 * x[0, 1] + 0.1 * x[0, 4]) / 0.5)
    assert out.size[0].tolist() == [1.0, 2.0, 2.0]


def test_crucial_merge_uses_received_attention_without_cls() -> None:
    reducer = build_reducer("crucial_merge", keep_rate=0.5, layers="0", fusion=False)
    reducer.bind(tiny("vivit_tiny").reducer.spec)
    x = torch.randn(2, 8, 4)
    state = TokenState.from_grid(x, (1, 2, 4), num_prefix=0)
    request = reducer.request(0, state)
    assert request.received_attn and request.keys and not request.cls_attn
    info = AttnInfo(keys=torch.randn(2, 8, 4), received_attn=torch.rand(2, 8))
    out = reducer.reduce(state, info, 0)
    assert out.num_tokens == 4 and out.size.sum(1).tolist() == [8.0, 8.0]


def test_crucial_merge_with_zero_gate_and_keep_one_is_the_baseline() -> None:
    video = clip(2)
    with torch.no_grad():
        for backbone in ("timesformer_tiny", "vivit_tiny"):
            expected = tiny(backbone)(video)
            model = tiny(backbone, "crucial_merge", keep_rate=1.0)
            assert model.reducer.adds_parameters and float(model.reducer.fuser.gate.abs().sum()) == 0
            assert torch.equal(model(video), expected)


def test_crucial_merge_fusion_gate_trains_first() -> None:
    """A zero gate gets a gradient at once; the fusion's inner weights get theirs after one step."""
    model = tiny("vivit_tiny", "crucial_merge", keep_rate=0.7).train()
    fuser = model.reducer.fuser
    inner = [p for n, p in fuser.named_parameters() if n != "gate"]
    video, labels = clip(2), torch.tensor([0, 3])
    optimiser = torch.optim.SGD(model.parameters(), lr=0.5)
    nn.functional.cross_entropy(model(video), labels).backward()
    assert float(fuser.gate.grad.abs().sum()) > 0
    assert all(float(p.grad.abs().sum()) == 0 for p in inner)  # expected for a LayerScale-style gate
    optimiser.step()
    optimiser.zero_grad()
    nn.functional.cross_entropy(model(video), labels).backward()
    assert all(float(p.grad.abs().sum()) > 0 for p in inner)


def test_crucial_merge_fusion_changes_tokens_once_trained() -> None:
    model = tiny("timesformer_tiny", "crucial_merge", keep_rate=0.7, coarse_scales="2,2x3x3")
    state = model.embed(clip(1))
    with torch.no_grad():
        model.reducer.fuser.gate.fill_(1.0)
        fused = model.reducer.fuser(state)
    assert fused.num_tokens == state.num_tokens and fused.grid == state.grid
    assert torch.equal(fused.x[:, 0], state.x[:, 0])  # the CLS token is not a fine token
    assert not torch.allclose(fused.x[:, 1:], state.x[:, 1:])
    assert model.reducer.fuser.coarse_tokens(state).shape[1] == 8 * 9 + 4 * 4  # 2x2 per frame + 2 frames x 3x3


def test_crucial_merge_arguments() -> None:
    assert parse_scales("2") == ((1, 2),)
    assert parse_scales("2, 2x4x4") == ((1, 2), (2, 4))
    for bad in ("2x3", "1", "2x2x3", "a"):
        with pytest.raises(ValueError, match="coarse_scales"):
            parse_scales(bad)
    with pytest.raises(ValueError, match="one frame"):
        tiny("vivit_fe_tiny", "crucial_merge", coarse_scales="2x2x2")
    without = tiny("vivit_tiny", "crucial_merge", fusion=False)
    assert not without.reducer.adds_parameters and not list(without.reducer.parameters())


# --- cross_frame ------------------------------------------------------------------------------------


def test_cross_frame_plan_merges_repeats_into_their_predecessor() -> None:
    # two frames of 1 x 3 patches; frame 1's middle patch repeats frame 0's right patch (one step away)
    pos = TokenState.from_grid(torch.zeros(1, 7, 2), (2, 1, 3), num_prefix=1).pos
    keys = torch.tensor([[[0.0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 1, 0.01], [-1, 0, 0]]])
    plan = cross_frame_plan(keys, pos, r=1, window=3, num_prefix=1)
    assert plan.dest.tolist() == [[0, 1, 2, 3, 4, 3, 5]]  # token 5 joins token 3
    # with window 1 the repeat is out of reach; the best same-place match merges instead
    plan = cross_frame_plan(keys, pos, r=1, window=1, num_prefix=1)
    assert plan.num_out == 6 and plan.dest[0, 5] == 2  # token 5 joins token 2, the patch at its place
    # r counts over the whole clip; chains resolve to the earliest token
    plan = cross_frame_plan(keys, pos, r=3, window=3, num_prefix=1)
    assert plan.num_out == 4


def test_cross_frame_chains_follow_to_the_root() -> None:
    # three frames of one patch, all identical: frame 2 -> frame 1 -> frame 0 in one block
    pos = TokenState.from_grid(torch.zeros(1, 4, 2), (3, 1, 1), num_prefix=1).pos
    keys = torch.tensor([[[0.0, 1], [1, 0], [1, 0], [1, 0]]])
    plan = cross_frame_plan(keys, pos, r=2, window=1, num_prefix=1)
    assert plan.dest.tolist() == [[0, 1, 1, 1]] and plan.num_out == 2


def test_cross_frame_tokens_merge_only_nearby_in_the_previous_frame() -> None:
    model = tiny("timesformer_tiny", "cross_frame", r=30, layers="1", window=1)
    start, end = tracked(model, clip(2))
    assert end.num_tokens == 289 - 30 and end.grid is None
    members = end.source[:, 1:] > 0  # [B, n, N0]
    t, h, w = start.pos[0].unbind(-1)  # original patch positions
    for b in range(2):
        for holder in members[b]:
            idx = holder.nonzero().squeeze(1)
            assert len(set(h[idx].tolist())) == 1 and len(set(w[idx].tolist())) == 1  # the same place
            frames = sorted(t[idx].tolist())
            assert frames == list(range(int(frames[0]), int(frames[0]) + len(frames)))  # adjacent frames


def test_cross_frame_frames_mode_keeps_divided_attention() -> None:
    video = clip(2)
    video[:, :, 5] = video[:, :, 4]  # frames 4 and 5 repeat: the most similar adjacent pair
    model = tiny("timesformer_tiny", "cross_frame", r=1, layers="1", mode="frames")
    assert divided_blocks(model, video) == set(range(6))
    start, end = tracked(model, video)
    assert end.grid == (7, 6, 6) and end.frames == 7 and end.num_tokens == 1 + 7 * 36
    frame_of = torch.cat([torch.tensor([-1]), torch.arange(8).repeat_interleave(36)])
    merged_frame = end.source[:, 1 + 4 * 36 : 1 + 5 * 36] > 0  # output frame 4 = input frames 4 and 5
    assert set(frame_of[merged_frame.any(1)[0]].tolist()) == {4, 5}
    torch.testing.assert_close(end.size[:, 1 + 4 * 36 : 1 + 5 * 36], torch.full((2, 36), 2.0))


def test_frame_merge_plan_groups_runs_of_frames() -> None:
    keys = torch.tensor([[[0.0, 1], [1, 0], [1, 0], [0, 1], [0, 1], [1, 1]]])  # CLS + 5 one-patch frames
    plan, grid = frame_merge_plan(keys, (5, 1, 1), r=2, num_prefix=1)
    assert grid == (3, 1, 1) and plan.dest.tolist() == [[0, 1, 1, 2, 2, 3]]


@pytest.mark.parametrize(
    "backbone,args,match",
    [
        ("vivit_fe_tiny", {"r": 0}, "single frame"),
        ("vivit_tiny", {"r": 1, "mode": "frames"}, "at most 3"),
        ("vivit_tiny", {"r": 40, "layers": "0,1,2"}, "frames 1..3"),
        ("vivit_tiny", {"window": 2}, "odd"),
        ("vivit_tiny", {"mode": "pairs"}, "mode="),
    ],
)
def test_cross_frame_rejects_what_cannot_run(backbone: str, args: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(backbone, "cross_frame", **args)


# --- training sanity --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,args",
    [
        ("semantic", {"layer": 2, "tokens": "2x2x2"}),
        ("crucial_merge", {"keep_rate": 0.6}),
        ("cross_frame", {"r": 12, "layers": "0,2"}),
        ("cross_frame", {"r": 1, "layers": "1,3", "mode": "frames"}),
    ],
)
def test_a_few_sgd_steps_reduce_the_loss(name: str, args: dict) -> None:
    model = tiny("vivit_tiny", name, **args).train()
    video, labels = clip(4, seed=2), torch.tensor([0, 1, 2, 3])
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(6):
        loss = nn.functional.cross_entropy(model(video), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
