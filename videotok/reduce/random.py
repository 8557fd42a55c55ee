"""`random`: the naive baseline, removing as many tokens as a real strategy but chosen at random.

The amount is ToMe's (`r` per scheduled block, capped at half the tokens as ToMe caps it and refused
at bind where that cap would lower it, as tome is, so `random r=13` leaves exactly the token counts of
`tome r=13`) or EViT's (`keep_rate`: keep ceil(keep_rate * n) of the n non-CLS tokens; evit keeps one
more, its fused token). The CLS token is never removed.

mode="merge" (default): each removed token is merged into a randomly chosen surviving non-CLS token
  (of the same frame for scope="frame"); nothing is discarded and sizes still sum to N0, so the
  baseline differs from the real strategies only in *which* tokens go where.
mode="drop": removed tokens are discarded, the literal "drop at random" baseline. Sizes then no
  longer sum to N0 (they count the surviving patches); it exists to show what merging buys.

Randomness (our choice, made for the invariants):
  eval  one draw per (seed, block, token count), shared by every sample of every batch: the output of
        a sample never depends on the other samples in its batch, and evaluation is reproducible.
        The pattern is therefore the same for every clip of a run; average several seeds to
        average over patterns. Being fixed, the plan is made once per block and shape and kept
        (one plan row shared by the batch): an evaluation forward only applies it.
  train fresh, independent draws per sample at every call from a generator seeded with `seed`.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from videotok.layers.attention import AttnInfo, AttnRequest
from videotok.reduce.base import BackboneSpec, Reducer
from videotok.reduce.match import MergePlan, apply_plan, keep_plan, merge_into_plan, per_frame_plan
from videotok.reduce.registry import register_reducer
from videotok.reduce.schedule import (LayersArg, check_not_below_one, check_r_schedule, kept_after,
                                     parse_layers, r_per_layer)
from videotok.reduce.state import TokenState

MODES = ("merge", "drop")
SCOPES = ("global", "frame")


def random_plan(noise: Tensor, target_noise: Tensor, remove: int, num_prefix: int, drop: bool) -> MergePlan:
    """Remove the `remove` non-prefix tokens with the lowest `noise` [B, N]; each joins the survivor
    picked by `target_noise` [B, N] (uniform in [0, 1)) among the non-prefix survivors, or is dropped."""
    batch, num_tokens = noise.shape
    noise = noise.clone()
    noise[:, :num_prefix] = float("inf")  # prefix tokens are never removed
    removed = noise.topk(remove, dim=1, largest=False).indices  # [B, remove]
    keep = torch.ones_like(noise, dtype=torch.bool).scatter_(1, removed, False)
    if drop:
        return keep_plan(keep, num_out=num_tokens - remove)
    survivors = num_tokens - remove - num_prefix
    # removed token i joins the j-th surviving non-prefix token, j uniform in [0, survivors)
    j = (target_noise[:, :remove] * survivors).long().clamp_max(survivors - 1)  # [B, remove]
    rank = keep.long().cumsum(1)  # [B, N]: 1-based rank of each kept token among the kept
    joined = torch.searchsorted(rank, (j + num_prefix + 1).contiguous())  # token index with that rank
    target = torch.zeros_like(noise, dtype=torch.long).scatter_(1, removed, joined)  # [B, N]
    return merge_into_plan(keep, target, num_out=num_tokens - remove)


@register_reducer("random")
class RandomReduction(Reducer):
    """Remove tokens at random: the amount of `r` or `keep_rate`, merged (default) or dropped.

    r: tokens removed per scheduled block (per frame for scope="frame"); as for tome, bind refuses a
        schedule in which a block would ask for more than half the tokens entering it.
    keep_rate: alternatively, share of non-CLS tokens kept at each scheduled block (EViT's count).
    layers: blocks that reduce (None/"all" = every block).
    inflection: ToMe's (r, inflection) schedule over the scheduled blocks (with `r` only), as for tome:
        > 0 increasing, < 0 decreasing.
    mode: "merge" (into a random survivor, sizes add) or "drop" (discard; sizes no longer sum to N0).
    scope: "global" (over all tokens) or "frame" (the same amount in each frame, frames kept apart).
    seed: seeds the eval draw and the training generator.
    """

    divided_attention = "approximate (merged tokens are placed by their patches; dropped places are masked)"

    def __init__(
        self,
        r: int = 0,
        keep_rate: float = 1.0,
        layers: LayersArg = None,
        inflection: float = 0.0,
        mode: str = "merge",
        scope: str = "global",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"random: mode={mode!r}; choose one of: {', '.join(MODES)}")
        if scope not in SCOPES:
            raise ValueError(f"random: scope={scope!r}; choose one of: {', '.join(SCOPES)}")
        if int(r) < 0:
            raise ValueError(f"random: r={r} must be >= 0")
        kept_after(10, float(keep_rate))  # validates the range
        if int(r) > 0 and float(keep_rate) < 1.0:
            raise ValueError(f"random: set either r (got {r}) or keep_rate (got {keep_rate}), not both")
        self.r, self.keep_rate, self.layers, self.inflection = int(r), float(keep_rate), layers, float(inflection)
        self.mode, self.scope, self.seed = mode, scope, int(seed)
        self.schedule: dict[int, int] = {}  # block -> r (used with r)
        self.active: tuple[int, ...] = ()
        self._train_generator = torch.Generator().manual_seed(self.seed)
        self._eval_plans: dict[tuple, MergePlan] = {}

    def bind(self, spec: BackboneSpec) -> None:
        super().bind(spec)
        layers = parse_layers(self.layers, spec.depth)
        amounts = r_per_layer(self.r, len(layers), self.inflection)
        self.schedule = {l: r for l, r in zip(layers, amounts) if r > 0}
        self.active = tuple(sorted(self.schedule)) if self.keep_rate == 1.0 else layers
        t, h, w = spec.grid
        n = h * w if self.scope == "frame" else t * h * w  # non-prefix tokens (per frame for scope=frame)
        if self.keep_rate == 1.0:  # the same cap (amount) and limit as tome, so the two take the same r values
            where = "per frame" if self.scope == "frame" else "in the sequence"
            check_r_schedule(self.name, self.r, amounts, n, where, self.inflection, layers=layers)
        for layer in self.active:
            n -= self.amount(layer, n)
            check_not_below_one(self.name, n, f"after block {layer}")

    def amount(self, layer: int, n: int) -> int:
        """Tokens removed at `layer` from n non-prefix tokens."""
        if self.keep_rate < 1.0:
            return n - kept_after(n, self.keep_rate)
        return max(0, min(self.schedule.get(layer, 0), n // 2))

    def request(self, layer: int, state: TokenState) -> Optional[AttnRequest]:
        return AttnRequest() if layer in self.active else None

    def _training_noise(self, batch: int, groups: int, num_tokens: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Two [batch * groups, num_tokens] uniform draws (which tokens go, where they go), independent
        per sample and group, from the training generator."""
        noise = torch.rand(2, batch * groups, num_tokens, generator=self._train_generator).to(device)
        return noise[0], noise[1]

    def _eval_noise(self, layer: int, groups: int, num_tokens: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """The eval draw: two [groups, num_tokens] draws from a generator seeded by (seed, block,
        token count), the same for every sample (see the module doc)."""
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + layer * 10_007 + num_tokens)
        noise = torch.rand(2, groups, num_tokens, generator=gen).to(device)
        return noise[0], noise[1]

    def _plan(self, layer: int, batch: int, p: int, frames: Optional[int], num_tokens: int, remove: int,
              device: torch.device) -> MergePlan:
        """The plan of block `layer` over [B, num_tokens] tokens (`frames` equal groups of patch tokens
        after the prefix for scope="frame", None for scope="global"). In eval it is fixed: made once
        per (block, shape, device) with dest [1, N], shared by every sample, and kept: copying a fresh
        CPU draw to a GPU, or planning again, at every block would cost host time for nothing."""
        key = (layer, p, frames, num_tokens, remove, device, torch.is_inference_mode_enabled())
        if not self.training and key in self._eval_plans:
            return self._eval_plans[key]
        drop = self.mode == "drop"
        groups = frames or 1
        per_group = num_tokens if frames is None else (num_tokens - p) // frames
        noise, target = (self._training_noise(batch, groups, per_group, device) if self.training
                         else self._eval_noise(layer, groups, per_group, device))
        if frames is None:
            plan = random_plan(noise, target, remove, p, drop)
        else:
            plan = per_frame_plan(random_plan(noise, target, remove, 0, drop), batch if self.training else 1, frames, p)
        if not self.training:
            self._eval_plans[key] = plan
        return plan

    def reduce(self, state: TokenState, info: AttnInfo, layer: int) -> TokenState:
        b, device = state.x.shape[0], state.x.device
        if self.scope == "global":
            remove = self.amount(layer, state.num_patches)
            if remove == 0:
                return state
            plan = self._plan(layer, b, state.num_prefix, None, state.num_tokens, remove, device)
            return apply_plan(state, plan, grid=None, frames=None)
        frames = state.frames
        if frames is None:
            raise ValueError(f"random scope='frame' at block {layer}: the tokens no longer form per-frame groups")
        remove = self.amount(layer, state.num_patches // frames)
        if remove == 0:
            return state
        plan = self._plan(layer, b, state.num_prefix, frames, state.num_tokens, remove, device)
        return apply_plan(state, plan, grid=None, frames=frames)

    def extra_repr(self) -> str:
        return (f"r={self.r}, keep_rate={self.keep_rate}, layers={self.layers}, inflection={self.inflection}, "
                f"mode={self.mode}, scope={self.scope}, seed={self.seed}")
