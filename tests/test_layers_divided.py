"""TimeSformer's divided attention on merged tokens (videotok.layers.placement, Block._divided_placed).

Checked against a slow reference written from the definition (loops over tokens and frames), against
the grid path on the full grid, and on a known answer: merging tokens that are exact copies of each
other changes nothing, which only holds if the temporal branch survives the merge.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from io import BytesIO
from pathlib import Path

import pytest
import torch
from torch import nn

from reducer_helpers import clip, tiny
from videotok.layers import attention
from videotok.layers.attention import AttnRequest
from videotok.layers.placement import anchors, frame_buckets, place
from videotok.models import create_model
from videotok.reduce import TokenState, build_reducer
from videotok.reduce.match import MergePlan, apply_plan, merge_into_plan

REPO = Path(__file__).resolve().parents[1]


def _live_temporal(model: nn.Module) -> nn.Module:
    """TimeSformer zero-initialises temporal_fc after block 0; give it weight so the temporal branch
    shows in every output."""
    torch.manual_seed(3)
    for block in model.blocks:
        nn.init.normal_(block.temporal_fc.weight, std=0.05)
    return model


def _merge_pairs(state: TokenState, pairs: list[tuple[int, int]]) -> TokenState:
    """Merge patch token a into kept patch token b for every (a, b) (patch indices, prefix excluded)."""
    b, p = state.x.shape[0], state.num_prefix
    keep = torch.ones(state.num_tokens, dtype=torch.bool)
    target = torch.arange(state.num_tokens)
    for a, into in pairs:
        keep[p + a], target[p + a] = False, p + into
    plan = merge_into_plan(keep.expand(b, -1), target.expand(b, -1))
    return apply_plan(state, plan, grid=None, frames=None)


def _reference_divided(block: nn.Module, state: TokenState) -> torch.Tensor:
    """Divided attention from its definition, one token and one frame at a time."""
    p, x = state.num_prefix, state.x
    owner = state.owner
    frames, h, w = owner.shape[1:]
    out = []
    for s in range(x.shape[0]):
        patches = x[s, p:]
        n = patches.shape[0]
        pos = state.pos[s, p:]
        # anchor: the covered patch nearest the centre of mass, first in t-major order on ties
        cover = {i: [] for i in range(n)}
        for flat in range(frames * h * w):
            holder = int(owner[s].reshape(-1)[flat])
            if holder >= 0:
                cover[holder].append(flat)
        anchor = []
        for i in range(n):
            def dist(flat: int) -> float:
                t, rest = divmod(flat, h * w)
                return float(((torch.tensor([t, rest // w, rest % w], dtype=torch.float32) - pos[i]) ** 2).sum())
            anchor.append(min(cover[i], key=lambda f: (dist(f), f)))
        normed = block.temporal_norm1(patches)
        updated = []
        for i in range(n):
            place_hw = anchor[i] % (h * w)
            keys = [int(owner[s, t].reshape(-1)[place_hw]) for t in range(frames)]
            keys = [k for k in keys if k >= 0]
            q_only = _query_over(block.temporal_attn, normed[i], normed[keys])
            updated.append(patches[i] + block.temporal_fc(q_only))
        patches = torch.stack(updated)
        frame_of = [a // (h * w) for a in anchor]
        sizes = state.size[s] if state.merged else None
        res = torch.zeros_like(patches)
        prefix_res, used = torch.zeros_like(x[s, :p]), 0
        for t in range(frames):
            members = [i for i in range(n) if frame_of[i] == t]
            if not members:
                continue
            tokens = torch.cat([x[s, :p], patches[members]])[None]
            size = None if sizes is None else torch.cat([sizes[:p], sizes[p:][members]])[None]
            r, _ = block.attn(block.norm1(tokens), size, None, p)
            res[members] = r[0, p:]
            prefix_res, used = prefix_res + r[0, :p], used + 1
        out.append(torch.cat([x[s, :p] + prefix_res / used, patches + res]))
    return torch.stack(out)


def _query_over(attn: nn.Module, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """One query [C] attending over keys [K, C] with `attn`'s weights (projection included)."""
    c = query.shape[0]
    w, bias = attn.qkv.weight, attn.qkv.bias
    q = nn.functional.linear(query, w[:c], bias[:c]).view(attn.num_heads, 1, attn.head_dim)
    k = nn.functional.linear(keys, w[c : 2 * c], bias[c : 2 * c]).view(-1, attn.num_heads, attn.head_dim).transpose(0, 1)
    v = nn.functional.linear(keys, w[2 * c :], bias[2 * c :]).view(-1, attn.num_heads, attn.head_dim).transpose(0, 1)
    weights = (q @ k.transpose(-1, -2) * attn.scale).softmax(-1)  # [heads, 1, K]
    return attn.proj((weights @ v).transpose(0, 1).reshape(c))


@pytest.fixture(scope="module")
def timesformer() -> nn.Module:
    return _live_temporal(tiny("timesformer_tiny"))


def test_placed_path_equals_grid_path_on_the_full_grid(timesformer: nn.Module) -> None:
    state = timesformer.embed(clip(2))
    request = AttnRequest(keys=True, cls_attn=True, received_attn=True)
    with torch.no_grad():
        grid, grid_info = timesformer.blocks[0].attend(state, request)
        placed, placed_info = timesformer.blocks[0].attend(state.replace(grid=None), request)
    torch.testing.assert_close(placed.x, grid.x, atol=1e-5, rtol=1e-5)
    for name in ("keys", "cls_attn", "received_attn"):
        torch.testing.assert_close(getattr(placed_info, name), getattr(grid_info, name), atol=1e-6, rtol=1e-5)


def test_placed_path_matches_the_reference_after_merges_across_frames(timesformer: nn.Module) -> None:
    """Unequal frames (a token merged across frames, distant patches merged, a frame losing tokens)."""
    state = timesformer.embed(clip(2))
    hw = 36  # 6x6 patches per frame, 8 frames
    pairs = [(0, hw), (5, 35), (2 * hw + 7, 3 * hw + 7), (3 * hw + 1, 3 * hw + 2), (4 * hw + 9, 1)]
    merged = _merge_pairs(state, pairs)
    assert merged.grid is None and merged.merged
    with torch.no_grad():
        got, _ = timesformer.blocks[0].attend(merged, None)
        want = _reference_divided(timesformer.blocks[0], merged)
    torch.testing.assert_close(got.x, want, atol=1e-5, rtol=1e-4)


def test_anchor_lies_inside_the_footprint_even_when_the_centre_does_not() -> None:
    owner = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 0]]).reshape(1, 1, 3, 3)  # one 3x3 frame; token 0 holds two opposite corners, its centre (1, 1) is token 4's
    pos = torch.tensor([[0.0, 1.0, 1.0]] + [[0.0, i // 3, i % 3] for i in range(1, 8)]).unsqueeze(0)
    first = anchors(owner, pos)
    assert int(first[0, 0]) in (0, 8)  # a corner it covers, never the centre patch
    assert int(first[0, 0]) == 0  # equal distance: the first in t-major order
    assert first[0, 1:].tolist() == list(range(1, 8))


def test_tube_tokens_find_exactly_their_counterparts() -> None:
    """Tube merging keeps one token per place per frame: frame t' neighbour of token i is token i
    shifted by whole frames."""
    model = tiny("timesformer_tiny", "tome", r=5, scope="tube", layers="0,1")
    state = model.embed(clip(2))
    with torch.no_grad():
        for i in range(2):
            state = model.reducer.forward_block(model.blocks[i], state, i)
    per_frame = state.num_patches // 8
    placed = place(state.owner, state.pos[:, state.num_prefix :])
    token = torch.arange(state.num_patches)
    expected = (token % per_frame)[:, None] + per_frame * torch.arange(8)[None, :]
    assert per_frame == 36 - 10
    assert bool(placed.present.all())
    neighbours = placed.neighbours()
    assert torch.equal(neighbours[0], expected) and torch.equal(neighbours[1], expected)
    assert torch.equal(placed.frame[0], token // per_frame)


def test_frame_buckets_pad_unequal_frames() -> None:
    frame = torch.tensor([[0, 2, 0, 2, 2], [1, 1, 1, 1, 0]])
    buckets = frame_buckets(frame, 3)
    assert buckets.count.tolist() == [[2, 0, 3], [1, 4, 0]]
    assert buckets.index.shape == (2, 3, 4)
    assert buckets.index[0].tolist() == [[0, 2, 5, 5], [5, 5, 5, 5], [1, 3, 4, 5]]
    assert buckets.index[1].tolist() == [[4, 5, 5, 5], [0, 1, 2, 3], [5, 5, 5, 5]]
    assert torch.equal(buckets.valid, buckets.index < 5)


def _copy_a_column(video: torch.Tensor, patch: int = 16) -> torch.Tensor:
    """The patch column at (h=0, w=1) becomes a copy of (h=0, w=0) in every frame."""
    video = video.clone()
    video[..., :patch, patch : 2 * patch] = video[..., :patch, :patch]
    return video


@pytest.mark.parametrize("scope", ["global", "frame", "tube"])
def test_merging_exact_copies_changes_nothing(scope: str) -> None:
    """Known answer: without position embeddings, two tokens that are copies in every frame merge
    (cosine 1) and, with proportional attention, divided attention gives the unmerged logits. The
    joint fallback this replaced (temporal branch skipped after a merge) does not."""
    baseline = _live_temporal(tiny("timesformer_tiny"))
    for name in ("pos_embed", "time_embed"):
        nn.init.zeros_(getattr(baseline, name))
    reduced = tiny("timesformer_tiny", "tome", r=1, layers="0", scope=scope)
    reduced.load_state_dict(baseline.state_dict())
    video = _copy_a_column(clip(2))
    with torch.no_grad():
        want = baseline(video)
        got = reduced(video)
        trace: list[int] = []
        reduced(video, trace=trace)
    per_block = 1 if scope == "global" else 8
    assert trace[1] == trace[0] - per_block  # the copies were merged
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)

    # the old behaviour: after the merge, blocks attend jointly and skip their temporal branch
    placeless = _without_places(reduced)
    with torch.no_grad():
        assert (placeless(video) - want).abs().max() > 100 * (got - want).abs().max().clamp_min(1e-6)


def _without_places(model: nn.Module) -> nn.Module:
    """`model` whose reducer drops the owner map after reducing (the pre-placement fallback)."""
    reducer = model.reducer
    original = reducer.reduce

    def reduce(state: TokenState, info, layer: int) -> TokenState:
        return original(state, info, layer).replace(owner=None)

    reducer.reduce = reduce
    return model


@pytest.mark.parametrize("name,args", [
    ("tome", {"r": 4}), ("tome", {"r": 2, "scope": "frame"}), ("tome", {"r": 2, "scope": "tube"}),
    ("evit", {"keep_rate": 0.7}), ("random", {"r": 4}), ("crucial_merge", {"keep_rate": 0.7, "fusion": False}),
    ("cross_frame", {"r": 8}),
])
def test_every_block_keeps_divided_attention_and_its_gradients(name: str, args: dict) -> None:
    model = _live_temporal(tiny("timesformer_tiny", name, **args)).train()
    calls: list[int] = []
    for i, block in enumerate(model.blocks):
        block.temporal_norm1.register_forward_hook(lambda *_, i=i: calls.append(i))
    trace: list[int] = []
    logits = model(clip(2), trace=trace)
    assert trace[-1] < trace[0]
    nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    assert sorted(set(calls)) == list(range(len(model.blocks)))
    last = model.blocks[-1]
    for param in (last.temporal_attn.qkv.weight, last.temporal_fc.weight, last.temporal_norm1.weight):
        assert param.grad is not None and float(param.grad.abs().sum()) > 0


def test_semantic_tokens_have_no_places_and_attend_jointly() -> None:
    model = tiny("timesformer_tiny", "semantic", layer=2)
    state = model.embed(clip(1))
    with torch.no_grad():
        for i in range(3):
            state = model.reducer.forward_block(model.blocks[i], state, i)
    assert state.owner is None and state.grid is None


def test_owner_follows_merges_and_drops() -> None:
    state = TokenState.from_grid(torch.zeros(1, 1 + 8, 4), (2, 2, 2), num_prefix=1)
    # patch 0 -> slot 0, patch 1 dropped, patches 2..7 -> slots 1..6, patch 7 joins patch 2
    dest = torch.tensor([[0, 1, -1, 2, 3, 4, 5, 6, 2]])
    after = apply_plan(state, MergePlan(dest=dest, num_out=7))
    assert after.owner.reshape(-1).tolist() == [0, -1, 1, 2, 3, 4, 5, 1]
    model = create_model("timesformer_tiny", num_classes=3)
    assert model.embed(torch.zeros(1, 3, 8, 96, 96)).owner.shape == (1, 8, 6, 6)


BEFORE_PLACEMENT = "ff2fcd6"  # the last commit whose merged TimeSformer tokens fell back to joint attention
_REFERENCE_SCRIPT = """
import sys, torch
from videotok.models import create_model
from videotok.reduce import build_reducer
out = {}
for name, args in [("none", {}), ("pool", {"layers": "2"}), ("cross_frame", {"mode": "frames", "r": 1, "layers": "1,3"})]:
    torch.manual_seed(0)
    model = create_model("timesformer_tiny", num_classes=6, reducer=build_reducer(name, **args)).eval()
    for block in model.blocks:
        torch.nn.init.normal_(block.temporal_fc.weight, std=0.05)
    video = torch.randn(2, 3, 8, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out[name] = (model.state_dict(), model(video))
torch.save(out, sys.argv[1])
"""


def test_the_grid_path_is_bit_identical_to_before_placement(tmp_path: Path, one_thread, monkeypatch) -> None:
    """Full-grid TimeSformers (no reducer, and reducers that keep the grid) give exactly the logits of
    the code before merged tokens were placed, run from this repository's history, on the attention
    kernel that code used (scaled_dot_product_attention for every length); on today's CPU kernel for
    short attention (layers.attention.attend) within float rounding of them."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_PLACEMENT, "videotok"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip(f"commit {BEFORE_PLACEMENT} is not in this checkout's history: {archive.stderr.decode()[:200]}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp_path / "before", filter="data")
    saved = tmp_path / "before.pt"
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "before"), OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-c", _REFERENCE_SCRIPT, str(saved)], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=300)
    before = torch.load(saved)
    for name, args in [("none", {}), ("pool", {"layers": "2"}), ("cross_frame", {"mode": "frames", "r": 1, "layers": "1,3"})]:
        state_dict, logits = before[name]  # one thread on both sides: the same reduction order
        model = create_model("timesformer_tiny", num_classes=6, reducer=build_reducer(name, **args)).eval()
        model.load_state_dict(state_dict)
        with torch.no_grad():
            torch.testing.assert_close(model(clip(2)), logits, atol=1e-6, rtol=0)
            with monkeypatch.context() as patch:
                patch.setattr(attention, "SHORT_KEYS", 0)  # the fused kernel at every length, as then
                assert torch.equal(model(clip(2)), logits), name
