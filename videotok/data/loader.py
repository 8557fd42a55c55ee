"""A DataLoader that knows how our sharded iterable dataset is split and when epochs change.

Two things a plain DataLoader gets wrong for ``VideoClipDataset``:
- ``len()``: every worker batches its own shard, so the count is the sum over workers of
  ceil(shard / batch_size), not ceil(total / batch_size). Lightning stops a training epoch
  at ``len()`` batches and sizes LR schedules with it.
- the epoch: Lightning calls ``set_epoch`` on a sampler, which an iterable dataset does not
  have. We set it on the dataset when a pass starts, from ``epoch_source`` (the trainer's
  current epoch) or our own count of passes. The dataset's shuffle and augmentation depend
  only on that epoch (and seed, rank, worker).

A pass starts at its first ``next()``, not at ``iter()``: when Lightning resumes from a
checkpoint it creates the train iterator (``FitLoop.setup_data``) before it restores which
epoch runs (``FitLoop.reset`` and ``on_run_start``), so reading the epoch at ``iter()`` would
replay the checkpoint's finished epoch. Workers start at that first ``next()`` too.

``on_iter`` runs when a pass starts, after the epoch is set: the data module starts the
split's per-epoch failure count there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Optional

from torch.utils.data import DataLoader

from videotok.data.dataset import VideoClipDataset


class _DeferredPass:
    """An iterator that asks ``start`` for the real one at its first ``next()``."""

    def __init__(self, start: Callable[[], Iterator], length: int) -> None:
        self._start = start
        self._length = length
        self._iterator: Optional[Iterator] = None

    def __iter__(self) -> "_DeferredPass":
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._start()
        return next(self._iterator)

    def __len__(self) -> int:
        return self._length


class VideoDataLoader(DataLoader):
    """``DataLoader`` over a ``VideoClipDataset`` with exact ``len`` and per-epoch shuffling."""

    def __init__(
        self,
        dataset: VideoClipDataset,
        *args: Any,
        epoch_source: Optional[Callable[[], Optional[int]]] = None,
        on_iter: Optional[Callable[[], None]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, *args, **kwargs)
        self.epoch_source = epoch_source
        self.on_iter = on_iter
        self._iterations = 0

    def __len__(self) -> int:
        self.dataset.bind_distributed()
        return self.dataset.num_batches(self.batch_size, self.num_workers, self.drop_last)

    def __iter__(self) -> Iterator:
        return _DeferredPass(self._start_pass, len(self))

    def _start_pass(self) -> Iterator:
        self.dataset.bind_distributed()  # in the main process, before workers copy it
        epoch = self.epoch_source() if self.epoch_source is not None else None
        self.dataset.set_epoch(self._iterations if epoch is None else epoch)
        self._iterations += 1
        if self.on_iter is not None:
            self.on_iter()
        return super().__iter__()
