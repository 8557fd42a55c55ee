"""``KineticsDataModule``: Kinetics-style video folders as Lightning dataloaders.

A data folder holds ``train.csv``, ``val.csv``, ``test.csv`` (PyTorchVideo path-label lists,
paths relative to the folder) and ``classes.txt`` (one class name per line, line i = label i).
``data_tools.kinetics`` writes it from the official Kinetics lists, ``data_tools.synthetic``
writes a small synthetic one (also done here with ``synthetic=True``).

Batches: ``video`` [B, C, T, H, W] float (normalised), ``label``/``video_index``/``view_index``
[B] long, ``skipped`` list of (path, reason) for the videos skipped since the worker's
previous sample. Evaluation yields ``clips x crops`` views per video, ``view_index = clip *
crops + crop``; average the logits per ``video_index`` for video-level accuracy. B can be 0
when a worker's whole shard is unreadable (``skipped`` is then non-empty): skip the compute.
Feed every batch to ``failure_tracker(stage).update(batch)`` to enforce ``max_failure_rate``
(per epoch: each pass of a loader restarts its stage's count).

``decoder`` reads every video; a video it cannot open or decode is read whole with
``fallback_decoder`` (default ``pyav``; ``none`` disables it), and one neither can seek in is
read by PyAV from its first frame on (``pyav_from_start``, with a PyAV fallback); either is listed in
``batch["fallbacks"]`` as (path, decoder, reason); ``failure_tracker(stage).fallback_count``
counts them per pass (logged as ``<stage>/decoder_fallbacks``).

Val/test see every video exactly once over all ranks (no padding): ranks may run different
numbers of batches, so log per-step metrics with ``sync_dist=False`` and reduce at epoch end
(torchmetrics does); a split needs at least as many videos as ranks (Lightning refuses an
empty dataloader on one rank). Training pads ranks to equal length. Lightning's
``use_distributed_sampler`` has no effect here: the datasets are iterable and shard
themselves (``videotok.data.sampling``).
"""

from __future__ import annotations

import json
import warnings
from functools import partial
from pathlib import Path
from typing import Optional

import lightning as L
import torch

from videotok.data.dataset import VideoClipDataset, collate_with_failures
from videotok.data.failures import FailureTracker
from videotok.data.labels import read_classes, read_labeled_paths
from videotok.data.loader import VideoDataLoader
from videotok.data.pytorchvideo_compat import LabeledVideoPaths
from videotok.data.transforms import check_views, eval_clip_transform, eval_view_transform, train_transform
from videotok.data.video_reader import decoder_chain

# Lightning warns about every iterable dataset with a length; ours shards per worker, so the
# length (VideoDataLoader.__len__) is exact.
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")

SPLITS = ("train", "val", "test")
STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
FAILURE_STAGES = ("train", "val", "test")


class KineticsDataModule(L.LightningDataModule):
    """Kinetics-layout clips for training (random clip, scale, crop, flip) and multi-view
    evaluation (``*_views`` = temporal clips x spatial crops, crops 1 = centre, 3 = along the
    long side). ``sampling_rate`` is the frame interval in the video's own frames. Training batches
    hold ``batch_size`` clips, evaluation batches ``eval_batch_size`` views (default: the same):
    inference keeps no activations for backward, so it can take more, and a small model's forward
    on a small batch is mostly per-operation overhead."""

    def __init__(
        self,
        data_dir: str,
        num_frames: int = 8,
        sampling_rate: int = 8,
        train_scale: tuple[int, int] = (256, 320),
        crop_size: int = 224,
        eval_short_side: int = 224,
        mean: tuple[float, float, float] = (0.45, 0.45, 0.45),
        std: tuple[float, float, float] = (0.225, 0.225, 0.225),
        horizontal_flip: bool = True,
        decoder: str = "decord",
        fallback_decoder: str = "pyav",
        batch_size: int = 8,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 2,
        val_views: tuple[int, int] = (1, 1),
        test_views: tuple[int, int] = (1, 3),
        max_failure_rate: float = 0.05,
        synthetic: bool = False,
        seed: int = 0,
        pin_memory: bool = True,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        _check_args(num_frames, sampling_rate, train_scale, crop_size, eval_short_side, mean, std,
                    val_views, test_views, max_failure_rate, batch_size, num_workers, eval_batch_size)
        decoder_chain(decoder, fallback_decoder)  # unknown or uninstalled: fail here, not in a worker
        self.data_dir = Path(data_dir)
        self.num_frames = num_frames
        self.sampling_rate = sampling_rate
        self.train_scale = tuple(train_scale)
        self.crop_size = crop_size
        self.eval_short_side = eval_short_side
        self.mean, self.std = tuple(mean), tuple(std)
        self.horizontal_flip = horizontal_flip
        self.decoder = decoder
        self.fallback_decoder = fallback_decoder
        self.batch_size = batch_size
        self.eval_batch_size = batch_size if eval_batch_size is None else eval_batch_size
        self.num_workers = num_workers
        self.val_views = tuple(val_views)
        self.test_views = tuple(test_views)
        self.max_failure_rate = max_failure_rate
        self.synthetic = synthetic
        self.seed = seed
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self._classes: Optional[list[str]] = None
        self._videos: dict[str, LabeledVideoPaths] = {}
        self._trackers: dict[str, FailureTracker] = {}

    # -- the data folder -------------------------------------------------------------------
    def _has_csvs(self) -> bool:
        return all((self.data_dir / f"{s}.csv").is_file() for s in SPLITS)

    def prepare_data(self) -> None:
        """With ``synthetic=True`` and no CSVs yet, or a set an older generator wrote, generate the
        synthetic set in data_dir (a set the current generator wrote, with any parameters, is kept)."""
        if not self.synthetic:
            return
        from data_tools.synthetic import generate_synthetic, is_outdated

        if not self._has_csvs() or is_outdated(self.data_dir):
            generate_synthetic(self.data_dir)

    def _missing(self, what: Path) -> FileNotFoundError:
        d = self.data_dir
        return FileNotFoundError(
            f"data_dir={str(d)!r}: {what} not found. Make the dataset first: "
            f"`python -m data_tools.synthetic {d}` (or set synthetic: true) for the synthetic set, "
            f"or `python -m data_tools.kinetics --annotations ANNOTATIONS_DIR --videos VIDEOS_DIR "
            f"--data-dir {d}` for Kinetics."
        )

    @property
    def classes(self) -> list[str]:
        """Class names from classes.txt (label i = line i)."""
        if self._classes is None:
            if self.synthetic:
                self.prepare_data()  # idempotent; lets num_classes work before fit starts
            path = self.data_dir / "classes.txt"
            if not self.data_dir.is_dir():
                raise self._missing(self.data_dir)
            if not path.is_file():
                raise self._missing(path)
            self._classes = read_classes(path)
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        """(C, T, H, W) of one sample's ``video``."""
        return (3, self.num_frames, self.crop_size, self.crop_size)

    def setup(self, stage: Optional[str] = None) -> None:
        """Read and check the split files ``stage`` needs (labels against classes.txt)."""
        splits = STAGE_SPLITS.get(stage, SPLITS) if stage is not None else SPLITS
        classes = self.classes
        self._check_synthetic_flip()
        for split in splits:
            csv = self.data_dir / f"{split}.csv"
            if not csv.is_file():
                raise self._missing(csv)
            self._videos[split] = read_labeled_paths(
                csv, len(classes), root=self.data_dir, classes_path=self.data_dir / "classes.txt"
            )

    def _check_synthetic_flip(self) -> None:
        manifest = self.data_dir / "synthetic.json"
        if not (self.horizontal_flip and manifest.is_file()):
            return
        directions = json.loads(manifest.read_text()).get("params", {}).get("directions", [])
        if {"left", "right"} & set(directions):
            raise ValueError(
                f"{manifest}: classes move left/right, which horizontal_flip swaps; "
                "set horizontal_flip: false for this dataset"
            )

    def videos(self, split: str) -> LabeledVideoPaths:
        """The checked (path, label) list of ``split`` (after ``setup``)."""
        if split not in self._videos:
            raise RuntimeError(f"split {split!r} is not set up: call setup() for its stage first")
        return self._videos[split]

    def video_path(self, split: str, video_index: int) -> str:
        """Path of row ``video_index`` of ``split``, to name a video in a report."""
        return self.videos(split)[video_index][0]

    # -- failures --------------------------------------------------------------------------
    def failure_tracker(self, stage: str) -> FailureTracker:
        """The tracker for ``stage`` ('train', 'val' or 'test'), limit max_failure_rate; its
        counts restart whenever that stage's loader starts a pass (an epoch)."""
        if stage not in FAILURE_STAGES:
            raise ValueError(f"stage must be one of {FAILURE_STAGES}, got {stage!r}")
        if stage not in self._trackers:
            self._trackers[stage] = FailureTracker(self.max_failure_rate, name=f"{stage} data")
        return self._trackers[stage]

    # -- dataloaders -----------------------------------------------------------------------
    def _dataset(self, split: str, views: tuple[int, int], skip_videos: frozenset[int] = frozenset()) -> VideoClipDataset:
        training = split == "train"
        if training:
            transform = train_transform(self.num_frames, self.train_scale, self.crop_size,
                                        self.mean, self.std, self.horizontal_flip)
            view_transform = None
        else:
            transform = eval_clip_transform(self.num_frames, self.eval_short_side)
            view_transform = eval_view_transform(self.crop_size, views[1], self.mean, self.std)
        return VideoClipDataset(
            self.videos(split), self.num_classes, transform, training=training,
            num_frames=self.num_frames, sampling_rate=self.sampling_rate, views=views,
            view_transform=view_transform, decoder=self.decoder,
            fallback_decoder=self.fallback_decoder, seed=self.seed, skip_videos=skip_videos,
        )

    def _loader(self, split: str, dataset: VideoClipDataset) -> VideoDataLoader:
        return VideoDataLoader(
            dataset,
            batch_size=self.batch_size if dataset.training else self.eval_batch_size,
            num_workers=self.num_workers,
            collate_fn=partial(collate_with_failures, video_shape=self.video_shape),
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            epoch_source=self._current_epoch if dataset.training else None,
            on_iter=partial(self._start_failure_count, split, dataset),
        )

    def _current_epoch(self) -> Optional[int]:
        """The trainer's epoch when a train pass starts (its first batch, see ``VideoDataLoader``:
        at ``iter()`` a resumed run would still report the checkpoint's finished epoch)."""
        trainer = self.trainer
        return trainer.current_epoch if trainer is not None else None

    def _start_failure_count(self, split: str, dataset: VideoClipDataset) -> None:
        """A pass over ``split`` starts: count its failures afresh, out of this rank's videos."""
        self.failure_tracker(split).start_epoch(expected=len(dataset.shard(0, 1)))

    def train_dataloader(self) -> VideoDataLoader:
        return self._loader("train", self._dataset("train", (1, 1)))

    def val_dataloader(self) -> VideoDataLoader:
        return self.evaluation_dataloader("val", self.val_views)

    def test_dataloader(self) -> VideoDataLoader:
        return self.evaluation_dataloader("test", self.test_views)

    def evaluation_dataloader(self, split: str, views: tuple[int, int],
                              skip_videos: frozenset[int] = frozenset()) -> VideoDataLoader:
        """``views`` of every video of ``split`` ('val' or 'test') but the rows in ``skip_videos``
        (those an interrupted evaluation already scored)."""
        if split not in ("val", "test"):
            raise ValueError(f"split={split!r}: evaluation reads 'val' or 'test'")
        return self._loader(split, self._dataset(split, tuple(views), frozenset(skip_videos)))


def _check_args(num_frames, sampling_rate, train_scale, crop_size, eval_short_side, mean, std,
                val_views, test_views, max_failure_rate, batch_size, num_workers, eval_batch_size=None) -> None:
    """Reject settings that would fail later, far from their cause."""
    problems = []
    if num_frames < 1 or sampling_rate < 1:
        problems.append("num_frames and sampling_rate must be >= 1")
    if len(train_scale) != 2 or not crop_size <= train_scale[0] <= train_scale[1]:
        problems.append("need crop_size <= train_scale[0] <= train_scale[1], "
                        f"got {crop_size} and {tuple(train_scale)}")
    if eval_short_side < crop_size:
        problems.append(f"eval_short_side ({eval_short_side}) must be >= crop_size ({crop_size})")
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        problems.append("mean and std need 3 values, std > 0")
    for name, views in (("val_views", val_views), ("test_views", test_views)):
        try:
            check_views(views, name)
        except ValueError as error:
            problems.append(str(error))
    if not 0.0 <= max_failure_rate <= 1.0:
        problems.append(f"max_failure_rate must be in [0, 1], got {max_failure_rate}")
    if batch_size < 1 or num_workers < 0:
        problems.append("batch_size must be >= 1 and num_workers >= 0")
    if eval_batch_size is not None and eval_batch_size < 1:
        problems.append(f"eval_batch_size must be >= 1 (or left out: batch_size), got {eval_batch_size}")
    if problems:
        raise ValueError("KineticsDataModule: " + "; ".join(problems))
