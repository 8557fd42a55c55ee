"""Which blocks reduce, and by how much. Shared by every strategy so argument names mean one thing."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

LayersArg = Union[str, Sequence[int], None]


def parse_layers(layers: LayersArg, depth: int, option: str = "layers") -> tuple[int, ...]:
    """Block indices from "3,6,9", [3, 6, 9], "all" or None (every block). Validated against depth."""
    if layers is None or (isinstance(layers, str) and layers.strip().lower() in ("", "all")):
        return tuple(range(depth))
    if isinstance(layers, str):
        try:
            values = [int(v) for v in layers.replace(" ", "").split(",") if v]
        except ValueError:
            raise ValueError(f"{option}={layers!r}: expected comma-separated block indices such as 3,6,9") from None
    elif isinstance(layers, int):
        values = [layers]
    else:
        values = [int(v) for v in layers]
    bad = [v for v in values if not 0 <= v < depth]
    if bad:
        raise ValueError(f"{option}: block indices {bad} are outside 0..{depth - 1} for this {depth}-block backbone")
    if len(set(values)) != len(values):
        raise ValueError(f"{option}={layers!r}: an index appears twice")
    return tuple(sorted(values))


def r_per_layer(r: int, num_layers: int, inflection: float = 0.0) -> list[int]:
    """ToMe's (r, inflection) schedule, exactly as ToMe's `parse_r` (tome/utils.py) computes it.

    inflection 0 is a constant r; +1 increases from 0 to 2r over the layers, -1 decreases from 2r to
    0 (ToMe's paper's "decreasing schedule"); values in between interpolate. The ends are
    low = int(r * (1 - inflection)) and 2r - low, the layers between are spaced evenly and every value
    is truncated with int(), as ToMe does, so the total can fall a little short of r * num_layers
    (r=13, inflection=+-1 over 12 layers: 151, not 156). A single layer gets r (ToMe divides by zero).
    """
    if not -1.0 <= inflection <= 1.0:
        raise ValueError(f"inflection={inflection}: must lie in [-1, 1]")
    if num_layers <= 1:
        return [r] * num_layers
    low = int(r * (1.0 - inflection))
    high = 2 * r - low
    step = (high - low) / (num_layers - 1)
    return [int(low + step * i) for i in range(num_layers)]


def kept_after(num_tokens: int, keep_rate: float) -> int:
    """Tokens kept from `num_tokens` at `keep_rate` (EViT's ceil), at least one."""
    if not 0.0 < keep_rate <= 1.0:
        raise ValueError(f"keep_rate={keep_rate}: must lie in (0, 1]")
    return max(1, math.ceil(keep_rate * num_tokens))


def check_not_below_one(name: str, remaining: int, detail: str) -> None:
    """Fail before any work when a schedule would leave fewer than one patch token."""
    if remaining < 1:
        raise ValueError(f"reducer {name!r}: the schedule leaves {remaining} patch tokens ({detail}); reduce less")


def capped_amounts(patches: int, amounts: Sequence[int]) -> list[int]:
    """What ToMe's cap lets run of the per-block `amounts` on `patches` tokens (per frame where r
    counts per frame): each block removes min(r, n // 2) of the n patch tokens entering it."""
    runs, n = [], patches
    for asked in amounts:
        runs.append(max(0, min(asked, n // 2)))
        n -= runs[-1]
    return runs


def largest_r(patches: int, num_layers: int, inflection: float) -> int:
    """The largest r such that every r in 0..it runs on `patches` tokens exactly as asked (no block
    of its (r, inflection) schedule over `num_layers` blocks asks for more than half its tokens)."""
    best = 0
    for r in range(1, patches + 1):
        amounts = r_per_layer(r, num_layers, inflection)
        if capped_amounts(patches, amounts) != amounts:
            break
        best = r
    return best


def check_r_schedule(
    name: str,
    r: int,
    amounts: Sequence[int],
    patches: int,
    where: str,
    inflection: float,
    layers: Optional[Sequence[int]] = None,
) -> None:
    """Refuse, before any work, an r schedule (ToMe's form) that ToMe's cap would lower at run time.

    `amounts` are the tokens asked of each scheduled block (`layers`, their block indices; positions
    in the schedule when not given) from `patches` patch tokens; `where` says what they count
    ("in the sequence", "per frame"). At run time a block removes at most half of the n tokens
    entering it (n // 2), so a block asking for more would quietly remove less than configured. The
    message names that block, what it asks, what would run, and the largest r (same blocks and
    inflection) that runs exactly as asked.
    """
    runs = capped_amounts(patches, amounts)
    short = next((i for i, (a, b) in enumerate(zip(amounts, runs)) if a != b), None)
    if short is None:
        return
    block = layers[short] if layers is not None else short
    entering = patches - sum(runs[:short])
    allowed = largest_r(patches, len(amounts), inflection)
    raise ValueError(
        f"reducer {name!r}: r={r} (inflection={inflection:g}) asks block {block} to remove {amounts[short]} of the "
        f"{entering} patch tokens {where} entering it, but at most half of them ({runs[short]}) can go (ToMe's "
        f"cap), so it would quietly remove {runs[short]}; over its {len(amounts)} blocks the schedule would remove "
        f"{sum(runs)} of the {sum(amounts)} tokens asked, leaving {patches - sum(runs)} of the {patches} patch "
        f"tokens {where}; allowed: r in 0..{allowed} for this backbone, layers and inflection"
    )
