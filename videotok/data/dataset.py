"""The iterable clip dataset: our own small loop over videos, so failures are counted.

Why not PyTorchVideo's ``LabeledVideoDataset``: on a bad video it retries silently, and the
caller never learns which file was bad. Here a bad video (missing, empty, truncated, not a
video for every decoder, label out of range) is skipped and its ``(path, reason)`` rides on the
next sample this worker yields, in ``sample["skipped"]``.

Samples: ``video`` float [C, T, H, W] (normalised), ``label`` int, ``video_index`` (row of the
split CSV), ``view_index`` (``clip * num_crops + crop``; 0 in training), ``skipped``.

Failures at the end of a shard: each worker holds back its latest sample until it knows the
next one, so failures after it still ride on it. A worker whose shard holds no readable video
at all yields one *failure-only record*, ``{"skipped": [...]}`` with no ``video``;
``collate_with_failures`` keeps its failures and drops the record, so that worker's batch
may have zero videos (B = 0) but still carries ``batch["skipped"]``.

Decoders: each video is read with ``decoder``; when that cannot open or decode it and a
``fallback_decoder`` is set, the whole video is read again with the fallback (never a clip of
one decoder mixed with a clip of the other); when both fail, PyAV reads it once more from its
first frame on, never seeking (``pyav_from_start``, videotok.data.stream_reader: SWF and other
streams without an index). Such a video rides as ``(path, fallback, reason)``
in its first sample's ``fallbacks`` and so in ``batch["fallbacks"]``. A video is skipped only
when every decoder failed; its reason names each decoder's failure. FFmpeg's messages while a
video is read go to the log, not the console (``videotok.data.decoder_messages``).

Training keeps epochs the same length on every rank (DDP needs equal step counts): a skipped
video is replaced by the next readable one of the worker's shard (wrapping around), so a
worker yields exactly its share unless its whole shard is unreadable.

Training is a function of (seed, epoch): the shuffle is seeded by ``seed + epoch`` and the
augmentation (clip start, scale, crop, flip) by (seed, epoch, rank, worker id), through private
RNG states swapped in around each video (``videotok.data.seeding``). An epoch therefore yields the
same clips whether it is reached from the start or after a resume, and loading data never moves
the caller's global RNG.

Evaluation decodes all views of a video before yielding any, so a video contributes exactly
``num_clips * num_crops`` views or none (and is then reported in ``skipped``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Optional, Union

import torch
from torch.utils.data import IterableDataset

from videotok.data.decoder_messages import captured_decoder_messages
from videotok.data.failures import Fallback, Skip, VideoLoadError
from videotok.data.pytorchvideo_compat import ClipInfo, LabeledVideoPaths, video_fps
from videotok.data.sampling import (
    clip_duration,
    distributed_rank_world,
    eval_clip_sampler,
    shard_indices,
    train_clip_sampler,
    worker_id_count,
)
from videotok.data.seeding import PrivateRandomState, stream_seed
from videotok.data.transforms import SampleTransform
from videotok.data.video_reader import NO_FALLBACK, decoder_chain, file_problem, open_video, read_clip

VideoOutcome = Union[list[dict], Skip]


class VideoClipDataset(IterableDataset):
    """Clips of labelled videos, sharded over ranks and workers (see module docstring).

    ``training=True``: one random clip per video through ``transform``; shuffled per epoch.
    ``training=False``: ``views[0]`` evenly spaced clips through ``transform``, each cut into
    ``views[1]`` crops through ``view_transform``; in order, every video exactly once.
    ``rank``/``world_size`` default to torch.distributed's at iteration time.
    """

    def __init__(
        self,
        videos: LabeledVideoPaths,
        num_classes: int,
        transform: SampleTransform,
        *,
        training: bool,
        num_frames: int = 8,
        sampling_rate: int = 8,
        views: tuple[int, int] = (1, 1),
        view_transform: Optional[SampleTransform] = None,
        decoder: str = "decord",
        fallback_decoder: str = NO_FALLBACK,
        seed: int = 0,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        skip_videos: frozenset[int] = frozenset(),
    ) -> None:
        super().__init__()
        if training and tuple(views) != (1, 1):
            raise ValueError("training samples one view per video")
        if training and skip_videos:
            raise ValueError("skip_videos is for evaluation (a resumed pass): training reads every video")
        if not training and view_transform is None:
            raise ValueError("evaluation needs a view_transform (the crop)")
        self.videos = videos
        self.num_classes = num_classes
        self.transform = transform
        self.view_transform = view_transform
        self.training = training
        self.num_frames = num_frames
        self.sampling_rate = sampling_rate
        self.views = (int(views[0]), int(views[1]))
        self.decoder = decoder
        self.fallback_decoder = fallback_decoder
        self.decoders = decoder_chain(decoder, fallback_decoder)
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.skip_videos = frozenset(skip_videos)
        self._epoch = 0
        self._iterations_since_set = 0

    # -- epochs ----------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Shuffle for ``epoch`` next. Persistent workers never see this call on their copy;
        they count their own iterations from the epoch they were created with."""
        self._epoch = epoch
        self._iterations_since_set = 0

    # -- sharding --------------------------------------------------------------------------
    def bind_distributed(self) -> None:
        """Fix rank and world size from torch.distributed (call in the main process)."""
        if self.rank is None or self.world_size is None:
            self.rank, self.world_size = distributed_rank_world()

    def _rank_world(self) -> tuple[int, int]:
        if self.rank is None or self.world_size is None:
            return distributed_rank_world()
        return self.rank, self.world_size

    def shard(self, worker_id: int, num_workers: int, epoch: int = 0) -> list[int]:
        """Rows of the CSV that this rank's worker ``worker_id`` reads in ``epoch``; the rows in
        ``skip_videos`` (scored by an interrupted pass) are left out before the split, so the ranks
        share what remains evenly."""
        rank, world = self._rank_world()
        rows = [i for i in range(len(self.videos)) if i not in self.skip_videos]
        picked = shard_indices(
            len(rows), rank, world, worker_id, num_workers,
            even=self.training, shuffle=self.training, seed=self.seed, epoch=epoch,
        )
        return [rows[i] for i in picked]

    def __len__(self) -> int:
        """Samples this rank yields when no video fails."""
        return len(self.shard(0, 1)) * self.views_per_video

    @property
    def views_per_video(self) -> int:
        return self.views[0] * self.views[1]

    def num_batches(self, batch_size: int, num_workers: int, drop_last: bool = False) -> int:
        """Batches this rank's DataLoader yields when no video fails (each worker batches its
        own samples, so each worker may end on a partial batch)."""
        workers = max(num_workers, 1)
        per_worker = [len(self.shard(w, workers)) * self.views_per_video for w in range(workers)]
        rounding = math.floor if drop_last else math.ceil
        return sum(rounding(n / batch_size) for n in per_worker)

    # -- iteration -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict]:
        worker_id, num_workers = worker_id_count()
        epoch = self._epoch + self._iterations_since_set
        self._iterations_since_set += 1
        indices = self.shard(worker_id, num_workers, epoch)
        if self.training:
            rank, _ = self._rank_world()
            rng = PrivateRandomState(stream_seed(self.seed, epoch, rank, worker_id))
            outcomes = self._train_outcomes(indices, rng)
        else:
            outcomes = map(self._load, indices)
        return self._attach_failures(outcomes)

    def _train_outcomes(self, indices: list[int], rng: PrivateRandomState) -> Iterator[VideoOutcome]:
        """Exactly ``len(indices)`` loaded videos, replacing failures by the next readable
        index of the shard; stops early only when every index of the shard failed. Clip start,
        scale, crop and flip draw from ``rng``, this epoch's stream (``videotok.data.seeding``)."""
        failed: set[int] = set()
        loaded, position = 0, 0
        while loaded < len(indices) and len(failed) < len(set(indices)):
            index = indices[position % len(indices)]
            position += 1
            if index in failed:
                continue
            with rng.active():
                outcome = self._load(index)
            if isinstance(outcome, tuple):
                failed.add(index)
            else:
                loaded += 1
            yield outcome

    @staticmethod
    def _attach_failures(outcomes: Iterator[VideoOutcome]) -> Iterator[dict]:
        """Yield samples, each carrying the failures seen since the previous one."""
        pending: list[Skip] = []
        held: Optional[dict] = None
        for outcome in outcomes:
            if isinstance(outcome, tuple):
                pending.append(outcome)
                continue
            for sample in outcome:
                if held is not None:
                    yield held
                sample["skipped"], pending = pending, []
                held = sample
        if held is not None:
            held["skipped"] = held["skipped"] + pending
            yield held
        elif pending:
            yield {"skipped": pending}  # failure-only record: this worker read no video

    def _load(self, index: int) -> VideoOutcome:
        """All samples of video ``index``, or its (path, reason) if it cannot be used."""
        path, meta = self.videos[index]
        label = int(meta["label"])
        if not 0 <= label < self.num_classes:
            return (path, f"label {label} outside the {self.num_classes} classes")
        problem = file_problem(path)
        if problem is not None:
            return (path, problem)
        reasons: list[str] = []
        for decoder in self.decoders:
            with captured_decoder_messages(path) as messages:
                outcome = self._load_with(decoder, path, label, index)
            if not isinstance(outcome, str):
                if reasons:  # the configured decoder failed, this one did not
                    fallback: Fallback = (path, decoder, reasons[0])
                    outcome[0]["fallbacks"] = [fallback]
                return outcome
            news = [m for m in messages if m not in outcome]
            if news:  # decord's exception often says only "Error reading FILE...": add FFmpeg's why
                outcome += f" (FFmpeg: {news[0][:200]})"
            reasons.append(outcome.replace(path, os.path.basename(path)))  # reported beside its path
        return (path, "; ".join(reasons))

    def _load_with(self, decoder: str, path: str, label: int, index: int) -> Union[list[dict], str]:
        """The samples of one video read with ``decoder``, or why it failed."""
        video = None
        try:
            video = open_video(path, decoder)
            duration = clip_duration(self.num_frames, self.sampling_rate, video_fps(video))
            if self.training:
                return [self._train_sample(video, duration, label, index)]
            return self._eval_samples(video, duration, label, index)
        except VideoLoadError as e:
            reason = str(e)
        except Exception as e:  # noqa: BLE001 - a bad file must never kill the worker
            reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        finally:
            if video is not None:
                video.close()
        return reason if decoder in reason else f"{decoder}: {reason}"

    def _train_sample(self, video, duration, label: int, index: int) -> dict:
        info: ClipInfo = train_clip_sampler(duration)(0.0, video.duration, {})
        clip = read_clip(video, info.clip_start_sec, info.clip_end_sec, self.num_frames)
        sample = {"video": clip, "label": label, "video_index": index, "view_index": 0}
        return self.transform(sample)

    def _eval_samples(self, video, duration, label: int, index: int) -> list[dict]:
        num_clips, num_crops = self.views
        sampler = eval_clip_sampler(duration, num_clips, num_crops)
        samples: list[dict] = []
        clip = None
        for _ in range(num_clips * num_crops):
            info: ClipInfo = sampler(0.0, video.duration, {})
            if info.aug_index == 0:  # a new clip: decode once, crop num_crops times
                raw = read_clip(video, info.clip_start_sec, info.clip_end_sec, self.num_frames)
                clip = self.transform({"video": raw})["video"]
            view = {
                "video": clip,
                "crop_index": info.aug_index,
                "label": label,
                "video_index": index,
                "view_index": info.clip_index * num_crops + info.aug_index,
            }
            view = self.view_transform(view)
            view.pop("crop_index", None)
            view.pop("spatial_index", None)
            samples.append(view)
        return samples


def collate_with_failures(
    records: list[dict], video_shape: Optional[tuple[int, int, int, int]] = None
) -> dict:
    """Stack samples into a batch and gather every record's failures in ``batch["skipped"]``.

    ``video`` [B, C, T, H, W]; ``label``, ``video_index``, ``view_index`` [B] long;
    ``skipped`` list of (path, reason); ``fallbacks`` list of (path, decoder, reason) for the
    videos read by the fallback decoder. B may be 0 (see the module docstring): ``video`` is
    then empty with shape [0, *video_shape] ([0, 0, 0, 0, 0] when not given).
    """
    skipped = [tuple(s) for r in records for s in r.get("skipped", ())]
    fallbacks = [tuple(f) for r in records for f in r.get("fallbacks", ())]
    lists = ("skipped", "fallbacks")
    samples = [{k: v for k, v in r.items() if k not in lists} for r in records if "video" in r]
    if samples:
        batch = torch.utils.data.default_collate(samples)
    else:
        empty = torch.empty(0, dtype=torch.long)
        batch = {
            "video": torch.empty(0, *(video_shape or (0, 0, 0, 0))),
            "label": empty,
            "video_index": empty.clone(),
            "view_index": empty.clone(),
        }
    batch["skipped"] = skipped
    batch["fallbacks"] = fallbacks
    return batch
