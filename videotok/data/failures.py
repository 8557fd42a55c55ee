"""Bad videos as data: what was skipped, and when to stop trusting a dataset.

Workers never raise on a bad video; they skip it and the (path, reason) pair travels with the
next sample to the main process (``batch["skipped"]``). There a ``FailureTracker`` counts them
and stops the run, with paths, once too large a fraction of the data is unusable: a few
corrupt Kinetics clips are normal, a broken mount or a wrong data_dir is not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

Skip = tuple[str, str]
"""A skipped video: (path, reason)."""


class VideoLoadError(Exception):
    """A video that cannot be used; ``str(error)`` is the reason reported with its path."""


def count_loaded_videos(batch: Mapping) -> int:
    """Videos that loaded in ``batch``: each counts once, at its first view (view_index 0)."""
    view_index = batch.get("view_index")
    if view_index is None:
        return 0
    if isinstance(view_index, torch.Tensor):
        return int((view_index == 0).sum())
    return sum(1 for v in view_index if v == 0)


class FailureTracker:
    """Counts loaded and skipped videos; raises when the skipped fraction passes a limit.

    Call ``update(batch)`` on every batch (train, val or test): it returns the batch's skipped
    videos (to log) and raises ``RuntimeError`` naming the fraction, the limit and some paths
    once at least ``min_attempts`` videos were tried and more than ``max_failure_rate`` of them
    failed. ``check(final=True)`` applies the limit whatever the count (e.g. at epoch end).
    """

    def __init__(
        self,
        max_failure_rate: float = 0.05,
        min_attempts: int = 20,
        name: str = "data",
        max_kept: int = 1000,
    ) -> None:
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(f"max_failure_rate must be in [0, 1], got {max_failure_rate}")
        self.max_failure_rate = max_failure_rate
        self.min_attempts = min_attempts
        self.name = name
        self.max_kept = max_kept
        self.reset()

    def reset(self) -> None:
        self.loaded = 0
        self.failures: list[Skip] = []
        self.failed = 0

    @property
    def attempted(self) -> int:
        return self.loaded + self.failed

    @property
    def rate(self) -> float:
        return self.failed / self.attempted if self.attempted else 0.0

    def record(self, loaded: int, skipped: Sequence[Skip] = ()) -> None:
        """Account ``loaded`` good videos and the ``skipped`` ones, then check the limit."""
        self.loaded += loaded
        self.failed += len(skipped)
        room = self.max_kept - len(self.failures)
        if room > 0:
            self.failures.extend(tuple(s) for s in skipped[:room])
        self.check()

    def update(self, batch: Mapping) -> list[Skip]:
        """Account one collated batch; return its skipped (path, reason) pairs."""
        skipped = [tuple(s) for s in batch.get("skipped", [])]
        self.record(count_loaded_videos(batch), skipped)
        return skipped

    def check(self, final: bool = False) -> None:
        """Raise if over the limit (after ``min_attempts`` tries, or always when ``final``)."""
        if not self.failed or (self.attempted < self.min_attempts and not final):
            return
        if self.rate > self.max_failure_rate:
            raise RuntimeError(self.summary())

    def summary(self, max_paths: int = 5) -> str:
        shown = "; ".join(f"{p} ({r})" for p, r in self.failures[:max_paths])
        more = f" and {self.failed - max_paths} more" if self.failed > max_paths else ""
        return (
            f"{self.name}: {self.failed} of {self.attempted} videos failed to load "
            f"({self.rate:.1%}), above max_failure_rate={self.max_failure_rate:.1%}: {shown}{more}. "
            "List them with `python -m data_tools.verify CSV --output cleaned.csv` and use the "
            "cleaned CSV, or raise max_failure_rate."
        )
