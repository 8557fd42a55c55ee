"""Per-class changes against the baseline: which classes a reduction costs, and which it helps.

A row's overall accuracy can hide a class that collapses (a fast motion merged away, a small
object pooled out). results.json keeps every class's change in video top-1; report.md shows, per
row, how many classes went down and up and the few that moved most, which reads the same for the
6 classes of the synthetic set and the 400 of Kinetics.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

from videotok.evaluate.result import EvaluationResult

TOP_CLASSES = 3  # classes listed per row and direction in report.md


@dataclass(frozen=True)
class ClassChange:
    name: str
    baseline_top1: Optional[float]  # video top-1 (%); None when the split has no video of the class
    top1: Optional[float]

    @property
    def delta(self) -> Optional[float]:
        """Points against the baseline; None when either side has no accuracy for the class."""
        if self.top1 is None or self.baseline_top1 is None:
            return None
        delta = self.top1 - self.baseline_top1
        return delta if math.isfinite(delta) else None


def class_changes(baseline: EvaluationResult, result: EvaluationResult) -> list[ClassChange]:
    """One change per class of the baseline, in its order, matched by class name (a class the row
    lacks has no change); empty when the row's result has no per-class accuracy."""
    if not result.per_class:
        return []
    top1 = {c.name: c.top1 for c in result.per_class}
    return [ClassChange(c.name, c.top1, top1.get(c.name)) for c in baseline.per_class]


def deltas_by_class(changes: Sequence[ClassChange]) -> dict[str, Optional[float]]:
    """{class: points or None}, for results.json."""
    return {c.name: c.delta for c in changes}


def most_changed(changes: Sequence[ClassChange], n: int = TOP_CLASSES) -> tuple[list[ClassChange], list[ClassChange]]:
    """(the n classes that lose most, most first; the n that gain most, most first). Classes that
    did not change are in neither; equal changes are ordered by class name, so the choice at the
    cut is stable from run to run."""
    moved = [c for c in changes if c.delta]
    losses = sorted((c for c in moved if c.delta < 0), key=lambda c: (c.delta, c.name))
    gains = sorted((c for c in moved if c.delta > 0), key=lambda c: (-c.delta, c.name))
    return losses[:n], gains[:n]


def markdown_changes(rows: Sequence[tuple[str, str, Sequence[ClassChange]]], n: int = TOP_CLASSES) -> str:
    """`rows`: (strategy, setting, changes) of each row but the baseline. One line per row: how many
    classes went down and up, and the n that lost and gained most (points of video top-1); n/a
    when no class has an accuracy on both sides."""
    lines = ["| strategy | setting | classes down / up | lose most | gain most |",
             "|---|---|---:|---|---|"]
    for strategy, setting, changes in rows:
        if all(c.delta is None for c in changes):
            lines.append(f"| {strategy} | {setting} | n/a | n/a | n/a |")
            continue
        down = sum(1 for c in changes if c.delta is not None and c.delta < 0)
        up = sum(1 for c in changes if c.delta is not None and c.delta > 0)
        losses, gains = most_changed(changes, n)
        lines.append(f"| {strategy} | {setting} | {down} / {up} | {_classes(losses)} | {_classes(gains)} |")
    return "\n".join(lines)


def _classes(changes: Sequence[ClassChange]) -> str:
    if not changes:
        return "-"
    return ", ".join(f"{c.name.replace('|', '/')} ({c.delta:+.1f})" for c in changes)
