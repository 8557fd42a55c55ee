"""Test arguments for every registered reducer, shared by tests/test_invariants.py.

One row per registry name. When you register a new reducer, add its row here: the invariant tests
pick it up for every backbone (timesformer_tiny, vivit_tiny, vivit_fe_tiny, videomae_tiny). A reducer
without a row is skipped with a reason saying so, never silently passed.

- `noop`: arguments under which the reducer must reproduce the `none` output (r=0, keep_rate=1...);
  None when no such setting exists (say why in `noop_reason`).
- `active`: settings that really change the tokens on the tiny backbones (6 blocks, 96x96, 6x6 patch
  grid, 8 frames; TimeSformer 8x6x6 tokens, ViViT 4x6x6 tubelets, ViViT-FE 4 frames of 6x6 each,
  VideoMAE 4x6x6 tubelets without a CLS token, so evit and crucial_merge rank by attention received).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

BACKBONES = ("timesformer_tiny", "vivit_tiny", "vivit_fe_tiny", "videomae_tiny")


@dataclass(frozen=True)
class Setting:
    args: dict[str, Any]
    reduces: bool = True  # the final token count is below N0
    conserves_size: bool = True  # sizes sum to N0 (False only for documented discarding modes)
    unsupported: dict[str, str] = field(default_factory=dict)  # backbone -> why this setting cannot run there
    unused_params: tuple[str, ...] = ()  # regexes of parameters left unused by design, besides the
    # temporal branch of divided blocks that ran joint attention (checked separately, exactly)

    def label(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.args.items()) or "default"


@dataclass(frozen=True)
class ReducerCase:
    noop: Optional[Setting]
    active: tuple[Setting, ...]
    noop_reason: str = ""


CROSS_FRAME_ONE_FRAME = "cross_frame needs several frames; the factorised encoder's spatial blocks see one"

RLT_ONE_FRAME = "rlt compares tubelets along time; the factorised encoder's spatial blocks see one frame"

CASES: dict[str, ReducerCase] = {
    "none": ReducerCase(noop=Setting({}, reduces=False), active=(Setting({}, reduces=False),)),
    "tome": ReducerCase(
        noop=Setting({"r": 0}, reduces=False),
        active=(
            Setting({"r": 4}),
            Setting({"r": 2, "scope": "frame"}),
            Setting({"r": 2, "scope": "tube"}),
            Setting({"r": 6, "inflection": -0.5, "layers": "1,2,4"}),
        ),
    ),
    "evit": ReducerCase(
        noop=Setting({"keep_rate": 1.0}, reduces=False),
        active=(
            Setting({"keep_rate": 0.7}),
            Setting({"keep_rate": 0.5, "layers": "0,3", "fuse": False}, conserves_size=False),
        ),
    ),
    "random": ReducerCase(
        noop=Setting({"r": 0}, reduces=False),
        active=(
            Setting({"r": 4}),
            Setting({"keep_rate": 0.6, "layers": "1,3", "scope": "frame", "seed": 3}),
            Setting({"r": 4, "mode": "drop"}, conserves_size=False),
        ),
    ),
    "pool": ReducerCase(
        noop=Setting({"kernel": 1}, reduces=False),
        active=(
            Setting({"layers": "1,3"}),
            Setting(
                {"layers": "2", "temporal": 2},
                unsupported={"vivit_fe_tiny": "the factorised encoder's spatial blocks see one frame"},
            ),
        ),
    ),
    "semantic": ReducerCase(
        noop=None,
        noop_reason="semantic always replaces the patch tokens by semantic tokens from block `layer` on; "
        "no setting reproduces the baseline",
        active=(
            Setting(
                {"layer": 2, "tokens": "2x2x2"},
                unsupported={"vivit_fe_tiny": "the factorised encoder's spatial blocks see one frame (use tokens=1xHxW)"},
            ),
            Setting({"layer": 1, "tokens": "1x3x3", "pool": "avg"}),
            Setting({"layer": 4, "tokens": "1x2x3", "global_centres": False, "proportional": True}),
        ),
    ),
    "crucial_merge": ReducerCase(
        noop=Setting({"keep_rate": 1.0}, reduces=False),  # the fusion runs, but its gate starts at zero
        active=(
            Setting({"keep_rate": 0.7}),
            Setting({"keep_rate": 0.5, "layers": "0,3", "fusion": False}),
            Setting(
                {"keep_rate": 0.6, "layers": "1,2", "coarse_scales": "2,2x3x3"},
                unsupported={"vivit_fe_tiny": "the factorised encoder's spatial blocks see one frame"},
            ),
        ),
    ),
    "cross_frame": ReducerCase(
        noop=Setting({"r": 0}, reduces=False, unsupported={"vivit_fe_tiny": CROSS_FRAME_ONE_FRAME}),
        active=(
            Setting({"r": 20, "layers": "0,2"}, unsupported={"vivit_fe_tiny": CROSS_FRAME_ONE_FRAME}),
            Setting({"r": 8, "window": 1}, unsupported={"vivit_fe_tiny": CROSS_FRAME_ONE_FRAME}),
            Setting({"r": 1, "layers": "1,3", "mode": "frames"}, unsupported={"vivit_fe_tiny": CROSS_FRAME_ONE_FRAME}),
        ),
    ),
    # randn clips change by about 1.1 (authors' units) per patch: 1.11 removes a different share of
    # each clip's tubelets, so batches really pad
    "rlt": ReducerCase(
        noop=Setting({"threshold": 0.0}, reduces=False, unsupported={"vivit_fe_tiny": RLT_ONE_FRAME}),
        active=(
            Setting({"threshold": 1.11}, unsupported={"vivit_fe_tiny": RLT_ONE_FRAME}),
            Setting({"threshold": 1.11, "proportional": True, "length_encoding": True},
                    unsupported={"vivit_fe_tiny": RLT_ONE_FRAME}),
        ),
    ),
    "vid_tldr": ReducerCase(
        noop=Setting({"r": 0}, reduces=False),
        active=(
            Setting({"r": 8, "layers": "0,1"}),
            Setting({"r": "12,6,3"}),
        ),
    ),
}
