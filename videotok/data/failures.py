"""Bad videos as data: what was skipped, and when to stop trusting a dataset.

Workers never raise on a bad video; they skip it and the (path, reason) pair travels with the
next sample to the main process (``batch["skipped"]``). There a ``FailureTracker`` counts them
per epoch and stops the run (``TooManyBadVideos``, with paths) once too large a fraction of the
data is unusable: a few corrupt Kinetics clips are normal, a broken mount or a wrong data_dir
is not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Optional

import torch

Skip = tuple[str, str]
"""A skipped video: (path, reason)."""

Fallback = tuple[str, str, str]
"""A video read by the fallback decoder: (path, decoder that read it, why the configured one could not)."""

LOGGER = logging.getLogger("videotok.data")


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


class TooManyBadVideos(RuntimeError):
    """More videos failed to load than ``max_failure_rate`` allows: the run must stop.

    Its message is one line (fraction, limit, option, a few paths); ``videotok`` prints it as
    ``videotok fit: error: ...`` instead of a traceback.
    """


class FailureTracker:
    """Counts loaded and skipped videos; raises ``TooManyBadVideos`` above a failure fraction.

    Call ``update(batch)`` on every batch (train, val or test): it returns the batch's skipped
    videos (to log) and raises once the limit is certainly exceeded (see ``check``). The data
    module calls ``start_epoch(expected)`` whenever a loader starts a pass over its split, so the
    counts are per epoch (per pass) and the tracker knows how many videos the pass will try.
    """

    def __init__(
        self,
        max_failure_rate: float = 0.05,
        min_attempts: int = 20,
        name: str = "data",
        max_kept: int = 1000,
        hopeless_rate: float = 0.5,
    ) -> None:
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(f"max_failure_rate must be in [0, 1], got {max_failure_rate}")
        self.max_failure_rate = max_failure_rate
        self.min_attempts = min_attempts
        self.name = name
        self.max_kept = max_kept
        self.hopeless_rate = hopeless_rate
        self.expected: Optional[int] = None
        self.reset()

    def reset(self) -> None:
        self.loaded = 0
        self.failures: list[Skip] = []
        self.failed = 0
        self.fallbacks: list[Fallback] = []  # the first max_kept of this pass
        self.fallback_count = 0  # videos read by data.fallback_decoder this pass (log as decoder_fallbacks)

    def start_epoch(self, expected: Optional[int] = None) -> None:
        """Forget the counts; ``expected``: videos (rows) this pass will try on this process."""
        self.reset()
        self.expected = expected

    @property
    def attempted(self) -> int:
        return self.loaded + self.failed

    @property
    def rate(self) -> float:
        return self.failed / self.attempted if self.attempted else 0.0

    def record(self, loaded: int, skipped: Sequence[Skip] = (), check: bool = True) -> None:
        """Account ``loaded`` good videos and the ``skipped`` ones, then check the limit
        (``check=False``: count only, e.g. under DDP where the limit is applied jointly)."""
        self.loaded += loaded
        self.failed += len(skipped)
        room = self.max_kept - len(self.failures)
        if room > 0:
            self.failures.extend(tuple(s) for s in skipped[:room])
        if check:
            self.check()

    def update(self, batch: Mapping, check: bool = True) -> list[Skip]:
        """Account one collated batch; return its skipped (path, reason) pairs. Videos the
        fallback decoder read (``batch["fallbacks"]``) are counted in ``fallback_count`` and
        logged (INFO, ``videotok.data``); they loaded, so they are not failures."""
        skipped = [tuple(s) for s in batch.get("skipped", [])]
        self.record_fallbacks(batch.get("fallbacks", ()))
        self.record(count_loaded_videos(batch), skipped, check)
        return skipped

    def record_fallbacks(self, fallbacks: Sequence[Fallback]) -> None:
        """Count and log videos that only the fallback decoder could read."""
        for path, decoder, reason in fallbacks:
            LOGGER.info("%s: %s read %s (%s)", self.name, decoder, path, reason)
        self.fallback_count += len(fallbacks)
        room = self.max_kept - len(self.fallbacks)
        if room > 0:
            self.fallbacks.extend(tuple(f) for f in fallbacks[:room])

    def check(self, final: bool = False) -> None:
        """Raise ``TooManyBadVideos`` if over the limit, on this process's counts.

        ``final=True`` (end of a pass): whenever the fraction is above ``max_failure_rate``.
        Mid-pass the fraction of a small sample is noise (2 bad of the first 20 is 10% on a set
        with 4% bad videos), so the run stops early only when the verdict cannot change: with
        ``expected`` known, when the failures so far already exceed the limit for the whole
        pass (a failed training video is replaced, so the pass tries ``expected + failed``);
        without it, after ``min_attempts`` tries. In both cases also as soon as more than
        ``hopeless_rate`` of at least ``min_attempts`` tries failed (a wrong mount, a bad list).
        """
        if self._over_limit(self.failed, self.attempted, self.expected, final):
            raise TooManyBadVideos(self.summary())

    def check_totals(self, failed: int, attempted: int, processes: int, expected: Optional[int] = None,
                     final: bool = True) -> None:
        """``check`` on the counts summed over every process (DDP). Each process calls it with the
        same totals, so all stop together instead of one stopping and leaving the others waiting
        in a collective. ``expected``: the videos the pass tries over every process."""
        if self._over_limit(failed, attempted, expected, final):
            raise TooManyBadVideos(self.summary(failed, attempted, f" over {processes} processes"))

    def _over_limit(self, failed: int, attempted: int, expected: Optional[int], final: bool) -> bool:
        if not failed or failed / attempted <= self.max_failure_rate:
            return False
        if final:
            return True
        enough = attempted >= self.min_attempts
        if expected is None:
            return enough
        certain = failed / (expected + failed) > self.max_failure_rate
        return certain or (enough and failed / attempted > self.hopeless_rate)

    def summary(self, failed: Optional[int] = None, attempted: Optional[int] = None, where: str = "",
                max_paths: int = 5) -> str:
        """One line: the fraction, the limit and its option, the first paths (this process's),
        what to do. ``failed``/``attempted``: totals over several processes (default: ours)."""
        failed = self.failed if failed is None else failed
        attempted = self.attempted if attempted is None else attempted
        listed = self.failures[:max_paths]
        shown = "; ".join(f"{p} ({r})" for p, r in listed)
        more = f" and {failed - len(listed)} more" if failed > len(listed) else ""
        limit = self.max_failure_rate
        return (
            f"{self.name}: {failed} of {attempted} videos failed to load{where} ({failed / attempted:.1%}), "
            f"above the limit data.max_failure_rate={limit:g} ({limit:.1%}): {shown}{more}. "
            "List them with `python -m data_tools.verify CSV --output cleaned.csv` and use the "
            "cleaned CSV, or raise --data.max_failure_rate."
        )
