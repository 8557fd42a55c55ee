"""Follow every original patch through one forward pass, for pictures of what a reducer did.

Nothing in the model changes: for one call of `forward_tokens`, instance attributes shadow the
methods the backbone contract runs (`embed`, `reducer.forward_block`, the reducer's `request` and
`reduce`, each block's `attn.cross`) and are removed afterwards, so normal runs pay nothing.

- `embed` starts `TokenState.source` as the identity; every merge (apply_plan) then carries it, so
  after a block the token holding each original patch is the argmax of `source` over the tokens,
  and a patch no patch token holds (dropped, or merged into the CLS token) has none.
- A reducer that ranks tokens by importance (evit, crucial_merge) is asked for it at every chosen
  block, also where it does not reduce (the answer is recorded and the reducer is not called), so
  the picture shows the CLS attention, or without CLS the attention received, that it ranks by.
- Tokens made by cross-attention (semantic tokens) hold no patches of their own: their `source`
  is only the pooling cell they started from. What they draw from is the attention of their
  generating layers, recomputed here from the inputs those layers saw (head-averaged, keys mapped
  back to the original patches through what each key holds, so the second layer's keys, [S1; X],
  reach the patches through the first layer's attention). The residual path (each token starting
  from its pooled cell) is not part of the map.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from videotok.layers.attention import Attention, AttnInfo, AttnRequest, size_bias
from videotok.models.base import VideoBackbone
from videotok.reduce.importance import importance, importance_request
from videotok.reduce.state import TokenState


@dataclass
class BlockMap:
    """The tokens leaving one block, drawn over the original patch grid (T', H', W') of the backbone."""

    block: int
    tokens: int  # patch tokens per video leaving the block (prefix tokens not counted)
    prefix: int  # prefix (CLS) tokens per video: one per sample the blocks see
    regions: Tensor  # [T', H', W'] long: the token holding each patch (ids unique in the video), -1 = none
    heat: Optional[Tensor] = None  # [T', H', W'] float, NaN where no token holds the patch
    heat_regions: Optional[Tensor] = None  # [T', H', W'] the tokens `heat` was measured on
    heat_label: str = ""  # "CLS attention", "attention received" or "semantic attention"
    # pixel-level reducers (rlt), block -1 = before block 0: the run length of the token at the tubelet
    # it kept, 0 at the tubelets it removed as repeats (greyed in `regions`)
    runs: Optional[Tensor] = None


@contextmanager
def _shadowed(obj: Any, name: str, replacement: Callable) -> Iterator[None]:
    """`obj.name` is `replacement` inside the block (an instance attribute hides the class's method)."""
    had, previous = name in vars(obj), vars(obj).get(name)
    setattr(obj, name, replacement)
    try:
        yield
    finally:
        if had:
            setattr(obj, name, previous)
        else:
            delattr(obj, name)


def shares(state: TokenState) -> Tensor:
    """[S, N, n0]: the share of each original patch token (prefix columns left out) each token
    holds, rows normalised to sum to one (zero rows for tokens holding no patch)."""
    held = state.source[:, :, state.num_prefix :]  # the original tokens were [prefix; patches]
    return held / held.sum(-1, keepdim=True).clamp_min(1e-12)


def token_of_patch(maps: Tensor, num_prefix: int) -> Tensor:
    """[S, N, n0] maps of the tokens -> [S, n0] the patch token (index among the patch tokens) with
    the largest share of each patch, -1 where no patch token holds any."""
    held = maps[:, num_prefix:]  # [S, n, n0]
    label = held.argmax(dim=1)
    return torch.where(held.sum(1) > 0, label, torch.full_like(label, -1))


def cross_weights(attn: Attention, queries: Tensor, context: Tensor, context_size: Optional[Tensor] = None) -> Tensor:
    """The head-averaged weights [B, Nq, Nk] of `Attention.cross(queries, context)` (its inputs
    already normalised), computed explicitly: the fused kernel never forms them."""
    c = queries.shape[-1]
    weight, bias = attn.qkv.weight, attn.qkv.bias
    q = F.linear(queries, weight[:c], None if bias is None else bias[:c])
    k = F.linear(context, weight[c : 2 * c], None if bias is None else bias[c : 2 * c])
    logits = attn._heads(q).float() @ attn._heads(k).float().transpose(-2, -1) * attn.scale  # [B, h, Nq, Nk]
    extra = size_bias(context_size, torch.float32)
    if extra is not None:
        logits = logits + extra
    return logits.softmax(dim=-1).mean(dim=1)


class _Tracker:
    """State of one tracked forward pass; its methods replace the model's for that pass."""

    def __init__(self, model: VideoBackbone, blocks: Sequence[int]) -> None:
        self.model, self.reducer, self.blocks = model, model.reducer, set(blocks)
        self.maps: dict[int, BlockMap] = {}
        self.forced: set[int] = set()  # blocks asked for importance the reducer did not want
        self.scores: dict[int, tuple[Tensor, Tensor]] = {}  # block -> (importance [S, N], token of patch [S, n0])
        self.crosses: list[tuple[Attention, Tensor, Tensor, Optional[Tensor]]] = []
        self.drawn: Optional[Tensor] = None  # [S, N, n0] attention maps of tokens made by cross-attention
        self.context_maps: Optional[Tensor] = None  # maps of the keys-only tokens in TokenState.context
        self.start_map: Optional[BlockMap] = None  # what the reducer's `start` did, when it changed anything

    @contextmanager
    def installed(self) -> Iterator[None]:
        with ExitStack() as stack:
            stack.enter_context(_shadowed(self.model, "embed", self._embed(self.model.embed)))
            for name, wrap in (("forward_block", self._forward_block), ("request", self._request),
                               ("reduce", self._reduce), ("start", self._start)):
                stack.enter_context(_shadowed(self.reducer, name, wrap(getattr(self.reducer, name))))
            for block in self.model.blocks:
                stack.enter_context(_shadowed(block.attn, "cross", self._cross(block.attn)))
            yield

    # --- the replaced methods ----------------------------------------------------------------------

    def _embed(self, original: Callable) -> Callable:
        def embed(video: Tensor) -> TokenState:
            state = original(video)
            samples, n, _ = state.x.shape
            identity = torch.eye(n, device=state.x.device, dtype=torch.float32)
            return state.replace(source=identity.unsqueeze(0).expand(samples, n, n))  # [S, N, N0]

        return embed

    def _start(self, original: Callable) -> Callable:
        def start(state: TokenState, video: Tensor) -> TokenState:
            out = original(state, video)
            if out is not state:
                self.start_map = self._kept_map(out)
            return out

        return start

    def _forward_block(self, original: Callable) -> Callable:
        def forward_block(block: Any, state: TokenState, layer: int) -> TokenState:
            self.crosses = []
            out = original(block, state, layer)
            self._after_block(layer, state, out)
            return out

        return forward_block

    def _request(self, original: Callable) -> Callable:
        def request(layer: int, state: TokenState) -> Optional[AttnRequest]:
            asked = original(layer, state)
            if layer not in self.blocks or not self.reducer.ranks_by_importance:
                return asked
            wanted = importance_request(state.num_prefix)
            if asked is None:
                self.forced.add(layer)
                return wanted
            return AttnRequest(keys=asked.keys, cls_attn=asked.cls_attn or wanted.cls_attn,
                               received_attn=asked.received_attn or wanted.received_attn)

        return request

    def _reduce(self, original: Callable) -> Callable:
        def reduce(state: TokenState, info: AttnInfo, layer: int) -> TokenState:
            if layer in self.blocks and (info.cls_attn is not None or info.received_attn is not None):
                self.scores[layer] = (importance(info).float(), token_of_patch(self._maps(state), state.num_prefix))
            if layer in self.forced:
                self.forced.discard(layer)
                return state  # the reducer did not ask at this block: it does not reduce here
            return original(state, info, layer)

        return reduce

    def _cross(self, attn: Attention) -> Callable:
        original = attn.cross

        def cross(queries: Tensor, context: Tensor, context_size: Optional[Tensor] = None) -> Tensor:
            self.crosses.append((attn, queries, context, context_size))
            return original(queries, context, context_size)

        return cross

    # --- what the picture needs --------------------------------------------------------------------

    def _maps(self, state: TokenState) -> Tensor:
        """[S, N, n0] what each current token holds or draws from."""
        if self.drawn is not None and self.drawn.shape[1] == state.num_tokens:
            return self.drawn
        return shares(state)

    def _after_block(self, layer: int, state: TokenState, out: TokenState) -> None:
        if self.crosses:
            self._follow_cross_attention(state, out)
        elif self.drawn is not None and self.drawn.shape[1] != out.num_tokens:
            self.drawn = None  # a later merge of drawn tokens: fall back to what `source` says
        if layer in self.blocks:
            self.maps[layer] = self._block_map(layer, out)

    def _follow_cross_attention(self, state: TokenState, out: TokenState) -> None:
        """Maps of tokens made by the last cross-attention of a block: its weights over its keys, the
        keys mapped to patches. The keys are the block's tokens, then the keys-only tokens handed on
        in `TokenState.context` (semantic: X at its first generating layer, [S1; X] at its second)."""
        attn, queries, context, context_size = self.crosses[-1]
        entering = self._maps(state)
        keys = entering
        if state.context is not None and self.context_maps is not None:
            keys = torch.cat([entering, self.context_maps], dim=1)
        # semantic hands on the tokens that entered its first generating layer
        handed = out.context is not None and out.context.shape[1] == entering.shape[1]
        self.context_maps = entering if handed else None
        if keys.shape[1] != context.shape[1] or queries.shape[1] != out.num_tokens:
            self.drawn = None  # a layout this does not know: show what `source` says
            return
        self.drawn = cross_weights(attn, queries, context, context_size) @ keys  # [S, Nq, n0]

    def _kept_map(self, out: TokenState) -> BlockMap:
        return _kept_map_of(out, self.model.grid)

    def _block_map(self, layer: int, out: TokenState) -> BlockMap:
        grid = self.model.grid
        samples, p = out.x.shape[0], out.num_prefix
        maps = self._maps(out)
        labels = token_of_patch(maps, p)  # [S, n0]
        regions = _video_ids(labels, out.num_patches).reshape(grid)
        result = BlockMap(block=layer, tokens=out.num_patches * samples, prefix=p * samples, regions=regions)
        if self.drawn is not None and maps is self.drawn:
            strength = maps[:, p:].max(dim=1).values  # [S, n0] the weight of the token drawing most
            result.heat, result.heat_regions, result.heat_label = strength.reshape(grid), regions, "semantic attention"
        elif layer in self.scores:
            score, before = self.scores[layer]
            heat = score.gather(1, before.clamp_min(0) + p)  # [S, n0] importance of the token holding each patch
            heat = torch.where(before >= 0, heat, torch.full_like(heat, float("nan")))
            result.heat, result.heat_regions = heat.reshape(grid), _video_ids(before, score.shape[1] - p).reshape(grid)
            result.heat_label = "CLS attention" if p >= 1 else "attention received"
        return result


def _kept_map_of(out: TokenState, grid: tuple[int, int, int]) -> BlockMap:
    """The tokens leaving a pixel-level reducer (rlt), as block -1: each token is drawn at the first
    tubelet it holds (the one it kept); the other tubelets it stands for are removed repeats, greyed,
    and `runs` gives each kept tubelet the number of tubelets its token stands for."""
    p = out.num_prefix
    labels = token_of_patch(shares(out), p)  # [S, n0]
    samples, n0 = labels.shape
    index = torch.arange(n0, device=labels.device).expand(samples, -1)
    spare = out.num_patches  # patches no token holds go to a spare slot
    holder = torch.where(labels >= 0, labels, torch.full_like(labels, spare))
    first = torch.full((samples, spare + 1), n0, device=labels.device, dtype=torch.long)
    first = first.scatter_reduce(1, holder, index, reduce="amin")  # [S, n+1], each token's first patch
    kept = (labels >= 0) & (first.gather(1, holder) == index)
    size = torch.cat([out.size[:, p:], out.size.new_zeros(samples, 1)], dim=1).gather(1, holder)  # [S, n0]
    runs = torch.where(kept, size.round().long(), torch.zeros_like(labels))
    regions = _video_ids(torch.where(kept, labels, torch.full_like(labels, -1)), out.num_patches)
    real = int((out.size[:, p:] > 0).sum())  # padding tokens are not tokens of this clip
    return BlockMap(block=-1, tokens=real, prefix=p * samples, regions=regions.reshape(grid), runs=runs.reshape(grid))


def _video_ids(labels: Tensor, per_sample: int) -> Tensor:
    """[S, n0] token indices per sample -> ids unique over the video (sample s's tokens offset by s * n)."""
    offset = torch.arange(labels.shape[0], device=labels.device)[:, None] * per_sample
    return torch.where(labels >= 0, labels + offset, labels)


def check_blocks(blocks: Sequence[int], depth: int, option: str = "--blocks") -> tuple[int, ...]:
    """Sorted, distinct block indices, each in 0..depth-1, or a ValueError naming `option`."""
    if not blocks:
        raise ValueError(f"{option}: name at least one block")
    wrong = [b for b in blocks if not 0 <= b < depth]
    if wrong:
        raise ValueError(f"{option}: block {wrong[0]} does not exist; this backbone has blocks 0..{depth - 1}")
    return tuple(sorted(set(blocks)))


@torch.no_grad()
def track(model: VideoBackbone, video: Tensor, blocks: Sequence[int]) -> list[BlockMap]:
    """Run `model` on one clip `video` [C, T, H, W] or [1, C, T, H, W] (normalised, the model's
    shape) and return the map of every block in `blocks`, in block order. The model runs in eval
    mode (its previous mode is restored) and comes out unchanged. A reducer that acts on the pixels
    before block 0 (rlt) adds a first map, block -1: what it kept."""
    blocks = check_blocks(blocks, len(model.blocks))
    video = video.unsqueeze(0) if video.ndim == 4 else video
    if video.shape[0] != 1:
        raise ValueError(f"track: one clip at a time, got a batch of {video.shape[0]}")
    parameter = next(model.parameters())
    tracker = _Tracker(model, blocks)
    was_training = model.training
    model.eval()
    try:
        with tracker.installed():
            model.forward_tokens(video.to(device=parameter.device, dtype=parameter.dtype))
    finally:
        model.train(was_training)
    kept = [tracker.start_map] if tracker.start_map is not None else []  # rlt: before block 0
    return kept + [tracker.maps[b] for b in blocks]
