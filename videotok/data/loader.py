"""A DataLoader that knows how our sharded iterable dataset is split and when epochs change.

Two things a plain DataLoader gets wrong for ``VideoClipDataset``:
- ``len()``: every worker batches its own shard, so the count is the sum over workers of
  ceil(shard / batch_size), not ceil(total / batch_size). Lightning stops a training epoch
  at ``len()`` batches and sizes LR schedules with it.
- the epoch: Lightning calls ``set_epoch`` on a sampler, which an iterable dataset does not
  have. We set it on the dataset at every ``iter()``, from ``epoch_source`` (e.g. the
  trainer's current epoch, right after a resume too) or our own count of iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from torch.utils.data import DataLoader

from videotok.data.dataset import VideoClipDataset


class VideoDataLoader(DataLoader):
    """``DataLoader`` over a ``VideoClipDataset`` with exact ``len`` and per-epoch shuffling."""

    def __init__(
        self,
        dataset: VideoClipDataset,
        *args: Any,
        epoch_source: Optional[Callable[[], Optional[int]]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, *args, **kwargs)
        self.epoch_source = epoch_source
        self._iterations = 0

    def __len__(self) -> int:
        self.dataset.bind_distributed()
        return self.dataset.num_batches(self.batch_size, self.num_workers, self.drop_last)

    def __iter__(self):
        self.dataset.bind_distributed()  # in the main process, before workers copy it
        epoch = self.epoch_source() if self.epoch_source is not None else None
        self.dataset.set_epoch(self._iterations if epoch is None else epoch)
        self._iterations += 1
        return super().__iter__()
