"""Which blocks reduce, and by how much. Shared by every strategy so argument names mean one thing."""
from __future__ import annotations

import math
from typing import Sequence, Union

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


def largest_r(patches: int, num_layers: int, inflection: float) -> int:
    """The largest r whose schedule asks to remove fewer than `patches` tokens (0 if none does)."""
    best = 0
    for r in range(1, patches):
        if sum(r_per_layer(r, num_layers, inflection)) >= patches:
            break  # the total only grows with r
        best = r
    return best


def check_r_schedule(name: str, r: int, amounts: list[int], patches: int, where: str, inflection: float) -> None:
    """Refuse an r schedule (ToMe's form) that asks to remove as many tokens as there are: at run
    time r would be capped at half the tokens and quietly remove less than asked."""
    asked = sum(amounts)
    if asked >= patches:
        allowed = largest_r(patches, len(amounts), inflection)
        check_not_below_one(
            name, max(0, patches - asked),
            f"r={r} at {len(amounts)} blocks merges {asked} of the {patches} patch tokens {where}; "
            f"allowed: r in 0..{allowed} for this backbone and layers",
        )
