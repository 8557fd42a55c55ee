"""The Pareto front of a comparison: the rows no other row beats on both accuracy and cost.

The report's `pareto_gflops` / `pareto_speed` flags and the front drawn in both plots come from
`pareto_front` alone, so the table and the plots cannot disagree about which rows are on it.
"""
from __future__ import annotations

import math
from typing import Sequence


def pareto_front(costs: Sequence[float], accuracies: Sequence[float], lower_cost_is_better: bool = True) -> list[bool]:
    """For each row, whether it is on the front: no other row is at least as good on both axes and
    strictly better on one. `costs` is GFLOPs (lower is better) or clips/s (pass
    `lower_cost_is_better=False`); accuracies are higher-is-better.

    Ties are compared exactly, without tolerance (video accuracies are counts over the same videos,
    so equal counts give equal floats): of rows with equal accuracy only the cheapest (or fastest)
    is on the front, of rows with equal cost only the most accurate, and rows equal on both axes
    are all on it (none beats the other). A row with a non-finite cost or accuracy (not measured)
    is never on the front and pushes no other row off it."""
    if len(costs) != len(accuracies):
        raise ValueError(f"pareto_front: {len(costs)} costs but {len(accuracies)} accuracies")
    sign = 1.0 if lower_cost_is_better else -1.0
    points = [(sign * c, a) if math.isfinite(c) and math.isfinite(a) else None for c, a in zip(costs, accuracies)]

    def beaten(p: tuple[float, float]) -> bool:
        return any(q[0] <= p[0] and q[1] >= p[1] and q != p for q in points if q is not None)

    return [p is not None and not beaten(p) for p in points]
