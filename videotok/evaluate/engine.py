"""One pass over a split for many models: each decoded batch of views goes through every row.

Decoding is what a video evaluation spends its time on (a 16x4 clip at 224 px costs about 0.1 s of
a core; a ViT-B forward of it on a GPU far less), so a comparison decodes each clip once and runs
every row's model on it: the baseline, the training-free rows (the baseline's own weights with
another reducer swapped in for their forward, no copy) and the fine-tuned rows (their own weights).
Each row keeps its own forward time (synchronised on GPU), its views' GFLOPs (the blank-clip
count plus `Cost.change`: what each view's own token counts cost) and its per-video records.

It runs on Lightning Fabric: `Runtime` holds the trainer's accelerator, devices, nodes and strategy.
The data module shards videos (never views) across ranks; every rank returns its records to rank 0
through Fabric's broadcast. As the pass goes, each rank flushes finished videos to a `PassStore`
(every `flush_every` videos, at the end, and on SIGTERM), and a rerun skips what the store holds.
"""
from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from videotok.evaluate.aggregate import VideoRecords, check_aggregate, first_views, video_records
from videotok.evaluate.pass_store import PassStore, RankTotals, Stored, add_totals
from videotok.evaluate.precision import autocast_dtype
from videotok.evaluate.video_list import VideoList
from videotok.flops import BlockInput, Cost, measure_cost
from videotok.reduce.base import Reducer

EVAL_SPLITS = {"val": "validate", "test": "test"}  # split -> data module stage
TOPK = 5
# Strategies under which every rank runs its own whole model, the command itself started once per
# process (Lightning's launcher or torchrun, SLURM): FSDP and DeepSpeed shard a model across ranks
# and need every rank in every forward, which uneven video shards cannot give; the spawning
# variants (ddp_spawn, ddp_fork) would need the pass as a function to launch.
STRATEGIES = ("auto", "ddp")


@dataclass
class EvalRow:
    """One model of a pass: `model` (a backbone, or a module holding one as `.model`/`.backbone`)
    run with `reducer` in place of the backbone's own (None: its own). Training-free rows of a
    comparison share one model and differ only in `reducer`."""

    name: str
    model: nn.Module
    reducer: Optional[Reducer] = None

    @property
    def backbone(self) -> nn.Module:
        return find_backbone(self.model)

    @contextlib.contextmanager
    def active(self) -> Iterator[nn.Module]:
        """The backbone with this row's reducer in place, in the backbone's mode, for one forward
        (then restored)."""
        backbone = self.backbone
        if self.reducer is None:
            yield backbone
            return
        with backbone.reducer_swapped(self.reducer):
            yield backbone


@dataclass(frozen=True)
class Runtime:
    """Where a pass runs: Lightning's accelerator, devices, nodes and strategy, and the autocast
    precision ("32", "bf16", "16" or Lightning's names)."""

    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32"

    @classmethod
    def for_device(cls, device: str | torch.device, precision: str = "32") -> "Runtime":
        """One device named the torch way: "cpu", "cuda" or "cuda:N"."""
        device = torch.device(device)
        if device.type == "cpu":
            return cls("cpu", 1, precision=precision)
        return cls("gpu" if device.type == "cuda" else device.type,
                   [device.index] if device.index is not None else 1, precision=precision)

    @classmethod
    def from_options(cls, trainer: Optional[dict] = None, *, device: Optional[str] = None,
                     accelerator: Optional[str] = None, devices: Any = None, num_nodes: Optional[int] = None,
                     strategy: Optional[str] = None, precision: Optional[str] = None) -> "Runtime":
        """The command's options over the config's `trainer:` section over one device. `device`
        ("cpu", "cuda", "cuda:N") names one device the torch way. A training strategy that shards the
        model (FSDP, DeepSpeed) evaluates with ddp: every device then holds the whole model."""
        trainer = trainer or {}
        precision = str(precision or trainer.get("precision", "32"))
        if device:
            if accelerator or devices is not None:
                raise ValueError("--device names one device; for several use --accelerator and --devices")
            try:
                kind = torch.device(device).type
            except RuntimeError:
                raise ValueError(f"--device {device!r}: expected cpu, cuda or cuda:N") from None
            if kind == "cuda" and not torch.cuda.is_available():
                raise ValueError(f"--device {device}: no CUDA device is available here")
            runtime = cls.for_device(device, precision)
            return cls(runtime.accelerator, runtime.devices, num_nodes or 1, strategy or "auto", precision)
        configured = str(trainer.get("strategy", "auto"))
        strategy = str(strategy or (configured if configured in STRATEGIES else "ddp"))
        devices = devices if devices is not None else trainer.get("devices", 1)
        num_nodes = int(num_nodes or trainer.get("num_nodes", 1))
        kind = str(accelerator or trainer.get("accelerator", "auto"))
        if kind in ("gpu", "cuda", "auto"):
            if torch.cuda.is_available():
                return cls("gpu", devices, num_nodes, strategy, precision)
            if accelerator in ("gpu", "cuda"):
                raise ValueError(f"--accelerator {accelerator}: no CUDA device is available here (use --accelerator cpu)")
            return cls("cpu", 1, 1, "auto", precision)  # a config written for GPUs, on a machine without
        if kind == "cpu" and not (isinstance(devices, int) and devices > 0):
            devices = 1  # -1 and auto count GPUs; on the CPU they mean one process
        return cls(kind, devices, num_nodes, strategy, precision)

    def describe(self) -> str:
        """`cpu x 1` / `gpu x 8 x 2 nodes (ddp)`: what the options ask for."""
        nodes = f" x {self.num_nodes} nodes" if self.num_nodes > 1 else ""
        return f"{self.accelerator} x {self.devices}{nodes} ({self.strategy}), precision {self.precision}"

    def trainer_options(self) -> dict[str, Any]:
        """The same devices as Trainer arguments, for the training a comparison does."""
        return {"accelerator": self.accelerator, "devices": self.devices, "num_nodes": self.num_nodes,
                "strategy": self.strategy}

    def check(self) -> None:
        autocast_dtype(self.precision, "precision")
        if str(self.strategy) not in STRATEGIES:
            raise ValueError(
                f"strategy={self.strategy!r}: evaluation runs a whole model on every device, so it takes "
                f"one of {', '.join(STRATEGIES)} (a model sharded by FSDP or DeepSpeed would need every "
                "rank in every forward); a checkpoint trained with FSDP evaluates with ddp"
            )
        if not isinstance(self.num_nodes, int) or self.num_nodes < 1:
            raise ValueError(f"num_nodes={self.num_nodes!r}: expected an integer >= 1")

    def fabric(self):
        import lightning as L

        self.check()
        return L.Fabric(accelerator=self.accelerator, devices=self.devices, num_nodes=self.num_nodes,
                        strategy=self.strategy, precision="32-true")


@dataclass
class RowOutcome:
    """A row's share of a finished pass."""

    records: VideoRecords
    cost: Cost  # counted on a blank clip (`videotok flops`)
    gflops_per_view: float  # mean over the views evaluated, from the tokens each one kept
    clips_per_second: float  # views per second of forward time, first batch of each rank left out
    model_seconds: float  # forward time, every batch, summed over ranks
    videos_per_second: float  # videos over model_seconds
    duplicates: int


@dataclass
class PassOutcome:
    rows: dict[str, RowOutcome]
    video_list: VideoList
    skipped: list[tuple[str, str]]
    fallbacks: list[tuple[str, str, str]]
    wall_seconds: float  # every run of the pass, rank 0's clock
    wait_seconds: float  # waiting for decoded batches, summed over ranks and runs
    runs: int  # 1, or more when the pass resumed an interrupted one
    world_size: int
    device: str

    def timing_summary(self) -> dict[str, Any]:
        return {"wall_seconds": self.wall_seconds, "wait_seconds": self.wait_seconds, "runs": self.runs,
                "processes": self.world_size,
                "model_seconds": {name: row.model_seconds for name, row in self.rows.items()}}


def find_backbone(model: nn.Module) -> nn.Module:
    """The video backbone inside ``model`` (itself, or its ``.model`` / ``.backbone``)."""
    for candidate in (model, getattr(model, "model", None), getattr(model, "backbone", None)):
        if isinstance(candidate, nn.Module) and all(
            hasattr(candidate, a) for a in ("in_chans", "num_frames", "img_size", "num_classes")
        ):
            return candidate
    raise TypeError(
        f"{type(model).__name__} is not a videotok backbone and holds none as .model or .backbone "
        "(need in_chans, num_frames, img_size, num_classes)"
    )


def check_compatible(backbone: nn.Module, datamodule: Any) -> None:
    """Fail before decoding anything when model and data cannot fit together."""
    problems = []
    if backbone.num_classes != datamodule.num_classes:
        problems.append(f"the model has {backbone.num_classes} classes, the data {datamodule.num_classes}")
    if backbone.num_frames != datamodule.num_frames:
        problems.append(f"the model takes {backbone.num_frames} frames, the data gives {datamodule.num_frames}")
    if backbone.img_size != datamodule.crop_size:
        problems.append(f"the model takes {backbone.img_size}px, the data crops {datamodule.crop_size}px")
    if problems:
        raise ValueError("model and data do not match: " + "; ".join(problems))


def run_pass(
    rows: list[EvalRow],
    datamodule: Any,
    split: str = "test",
    views: tuple[int, int] = (1, 1),
    aggregate: str = "softmax",
    runtime: Runtime = Runtime(),
    progress: bool = True,
    store: Optional[PassStore] = None,
    signature: Optional[dict[str, Any]] = None,
    flush_every: int = 200,
    description: str = "",
) -> Optional[PassOutcome]:
    """Score every row on every view of `split`; the outcome on rank 0, None on the other ranks.

    With a `store`, finished videos are flushed there as the pass goes and a rerun skips them; the
    store must have been started with the same `signature` (else ValueError, before any decoding)."""
    if split not in EVAL_SPLITS:
        raise ValueError(f"split={split!r}: evaluation runs on one of {', '.join(EVAL_SPLITS)}")
    if not rows or len({row.name for row in rows}) != len(rows):
        raise ValueError("a pass needs rows with distinct names")
    check_aggregate(aggregate)
    dtype = autocast_dtype(runtime.precision)
    datamodule.prepare_data()  # before the launch: other processes find the data made
    datamodule.setup(EVAL_SPLITS[split])
    for row in rows:
        check_compatible(row.backbone, datamodule)
    video_list = VideoList.from_labeled_paths(datamodule.videos(split), datamodule.data_dir)
    fabric = runtime.fabric()
    fabric.launch()

    names = [row.name for row in rows]
    stored = _resume(fabric, store, signature, names, video_list)
    loader = datamodule.evaluation_dataloader(split, views, skip_videos=stored.done())
    device = fabric.device
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    run_id = fabric.broadcast(uuid.uuid4().hex[:12] if fabric.is_global_zero else None)

    # every module a row's forward runs is in eval mode for the whole pass (a swapped reducer takes
    # its host's mode in `active`, and has its own back after each forward); the models' modes are
    # restored at the end
    modes = {id(row.model): row.model.training for row in rows}
    for row in rows:
        row.model.to(device).eval()
        if row.reducer is not None:
            row.reducer.to(device)
    costs = {}
    for row in rows:
        with row.active() as backbone:
            costs[row.name] = measure_cost(backbone)

    totals = RankTotals(rows={name: {"views": 0.0, "gflops_change": 0.0, "model_seconds": 0.0, "timed_views": 0.0,
                                     "timed_seconds": 0.0, "duplicates": 0.0} for name in names})
    collected = _Collected(names, views[0] * views[1], aggregate, _k(datamodule))
    flushes = [0]

    def flush() -> None:
        if store is not None and collected.has_unflushed():
            store.write(run_id, fabric.global_rank, flushes[0], *collected.take_unflushed(), totals)
            flushes[0] += 1

    start = time.perf_counter()
    bar = tqdm(total=len(loader), desc=description or f"evaluate {split}", unit="batch", dynamic_ncols=True,
               disable=not (progress and fabric.is_global_zero))
    try:
        with _flush_on_sigterm(), torch.inference_mode():
            since_flush = 0
            waited = time.perf_counter()
            for batch in loader:
                totals.wait_seconds += time.perf_counter() - waited
                collected.add_failures(batch)
                if batch["video"].shape[0]:
                    video = fabric.to_device(batch["video"])
                    for row in rows:
                        logits = _score(row, video, totals.rows[row.name], costs[row.name], autocast, device,
                                        warm_up=totals.batches == 0)
                        finished = collected.add(row.name, logits, batch)
                    since_flush += finished
                    totals.batches += 1
                totals.wall_seconds = time.perf_counter() - start
                bar.update(1)
                bar.set_postfix(videos=collected.videos, refresh=False)
                if since_flush >= flush_every:
                    flush()
                    since_flush = 0
                waited = time.perf_counter()
            collected.finish()
            for name in names:
                totals.rows[name]["duplicates"] += collected.duplicates[name]
    finally:
        bar.close()
        totals.wall_seconds = time.perf_counter() - start
        flush()
        for row in rows:
            row.model.train(modes[id(row.model)])

    mine = (*collected.this_run(), totals.to_dict())
    gathered = _gather(fabric, mine)
    if not fabric.is_global_zero:
        return None
    return _outcome(rows, costs, gathered, stored, aggregate, collected.k, video_list, fabric, runtime)


def _k(datamodule: Any) -> int:
    return min(TOPK, datamodule.num_classes)


def _score(row: EvalRow, video: Tensor, sums: dict[str, float], cost: Cost, autocast, device: torch.device,
           warm_up: bool) -> Tensor:
    """`row`'s logits for the batch, timed alone; its views' GFLOPs added to `sums`."""
    blocks: list[BlockInput] = []
    with row.active() as backbone:
        _synchronize(device)
        begin = time.perf_counter()
        with autocast:
            logits = backbone(video, blocks=blocks)
        _synchronize(device)
        seconds = time.perf_counter() - begin
        change = cost.change(backbone, blocks)
    n = video.shape[0]
    sums["views"] += n
    sums["gflops_change"] += float(change.sum())
    sums["model_seconds"] += seconds
    if not warm_up:
        sums["timed_views"] += n
        sums["timed_seconds"] += seconds
    return logits.float().cpu()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Collected:
    """What this process scored in this run: every row's finished videos (all of them, and those not
    yet flushed) and the videos it could not read or read with the fallback decoder."""

    def __init__(self, names: list[str], expected_views: int, aggregate: str, k: int) -> None:
        self.aggregate, self.k = aggregate, k
        self.pending = {name: _PendingViews(expected_views, aggregate, k) for name in names}
        self.unflushed: dict[str, list[VideoRecords]] = {name: [] for name in names}
        self.all: dict[str, list[VideoRecords]] = {name: [] for name in names}
        self.failures: tuple[list, list] = ([], [])  # (skipped, fallbacks) since the last flush
        self.all_failures: tuple[list, list] = ([], [])
        self.videos = 0  # finished by the first row (every row finishes the same videos)

    @property
    def duplicates(self) -> dict[str, int]:
        return {name: pending.duplicates for name, pending in self.pending.items()}

    def add_failures(self, batch: dict) -> None:
        for skipped, fallbacks in (self.failures, self.all_failures):
            skipped.extend(tuple(s) for s in batch["skipped"])
            fallbacks.extend(tuple(f) for f in batch.get("fallbacks", ()))

    def add(self, name: str, logits: Tensor, batch: dict) -> int:
        """Row `name`'s logits for a batch; returns how many videos they finished."""
        finished = self.pending[name].add(logits, batch)
        self._keep(name, finished)
        if name == next(iter(self.pending)):
            self.videos += len(finished)
        return len(finished)

    def finish(self) -> None:
        """Videos left incomplete (none, unless the data module broke its promise) are scored as they are."""
        for name, pending in self.pending.items():
            self._keep(name, pending.finish())

    def has_unflushed(self) -> bool:
        return any(self.unflushed.values()) or bool(self.failures[0] or self.failures[1])

    def take_unflushed(self) -> tuple[dict[str, VideoRecords], list, list]:
        records = {name: VideoRecords.concat(parts, self.aggregate, self.k) for name, parts in self.unflushed.items()}
        skipped, fallbacks = list(self.failures[0]), list(self.failures[1])
        for parts in (*self.unflushed.values(), *self.failures):
            parts.clear()
        return records, skipped, fallbacks

    def this_run(self) -> tuple[dict[str, VideoRecords], list, list]:
        records = {name: VideoRecords.concat(parts, self.aggregate, self.k) for name, parts in self.all.items()}
        return records, self.all_failures[0], self.all_failures[1]

    def _keep(self, name: str, records: VideoRecords) -> None:
        self.unflushed[name].append(records)
        self.all[name].append(records)


class _PendingViews:
    """Views of videos not yet complete; a video's record is made once all its views are in."""

    def __init__(self, expected: int, aggregate: str, k: int) -> None:
        self.expected, self.aggregate, self.k = expected, aggregate, k
        self.duplicates = 0
        self._logits: Optional[Tensor] = None
        self._meta: Optional[Tensor] = None  # [N, 3] label, video_index, view_index

    def add(self, logits: Tensor, batch: dict) -> VideoRecords:
        """Take a batch's views; return the records of the videos now complete."""
        meta = torch.stack([batch["label"], batch["video_index"], batch["view_index"]], dim=1).long()
        if self._logits is not None:
            logits, meta = torch.cat([self._logits, logits]), torch.cat([self._meta, meta])
        first = first_views(meta[:, 1], meta[:, 2])
        self.duplicates += len(meta) - len(first)
        logits, meta = logits[first], meta[first]
        videos, which = torch.unique(meta[:, 1], return_inverse=True)
        complete = (torch.bincount(which, minlength=len(videos)) >= self.expected)[which]
        self._logits, self._meta = logits[~complete], meta[~complete]
        return self._records(logits[complete], meta[complete])

    def finish(self) -> VideoRecords:
        logits, meta = self._logits, self._meta
        self._logits = self._meta = None
        if logits is None:
            return self._records(torch.empty(0, 1), torch.empty(0, 3, dtype=torch.long))
        return self._records(logits, meta)

    def _records(self, logits: Tensor, meta: Tensor) -> VideoRecords:
        if len(meta) == 0:
            return VideoRecords.concat([], self.aggregate, self.k)
        return video_records(logits, meta[:, 0], meta[:, 1], self.aggregate, self.k)


class _Terminated(Exception):
    pass


@contextlib.contextmanager
def _flush_on_sigterm() -> Iterator[None]:
    """SIGTERM (a scheduler's preemption) ends the pass through its `finally` (which flushes), then
    exits with 143 as the signal would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except _Terminated:
        print("stopped by SIGTERM: the videos scored so far are flushed; the same command resumes from them",
              file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _resume(fabric, store: Optional[PassStore], signature: Optional[dict[str, Any]], names: list[str],
            video_list: VideoList) -> Stored:
    """What earlier runs stored, read on rank 0 and sent to all (every rank must skip the same videos);
    a store started under another signature fails on every rank alike."""
    found: Any = Stored({name: [] for name in names}, [], [], {}, 0)
    if fabric.is_global_zero and store is not None:
        try:
            store.check({**(signature or {}), "rows": names, "video_list": video_list.sha256})
            found = store.load(names)
        except ValueError as error:
            found = error
    found = fabric.broadcast(found)
    if isinstance(found, ValueError):
        raise found
    return found


def _gather(fabric, mine: Any) -> list[Any]:
    """Every rank's `mine`, in rank order, on rank 0 (one broadcast per rank: Fabric has no
    gather of objects)."""
    if fabric.world_size == 1:
        return [mine]
    return [fabric.broadcast(mine if fabric.global_rank == rank else None, src=rank)
            for rank in range(fabric.world_size)]


def _outcome(rows: list[EvalRow], costs: dict[str, Cost], gathered: list[Any], stored: Stored,
             aggregate: str, k: int, video_list: VideoList, fabric, runtime: Runtime) -> PassOutcome:
    this_totals = [RankTotals.from_dict(t) for *_, t in gathered]
    totals = add_totals(this_totals + list(stored.totals.values()))
    outcomes = {}
    for row in rows:
        parts = stored.records[row.name] + [records[row.name] for records, *_ in gathered]
        sums = totals.rows.get(row.name, {})
        views = sums.get("views", 0.0)
        model_seconds = sums.get("model_seconds", 0.0)
        records = VideoRecords.concat(parts, aggregate, k)
        outcomes[row.name] = RowOutcome(
            records=records,
            cost=costs[row.name],
            gflops_per_view=costs[row.name].gflops + (sums["gflops_change"] / views if views else 0.0),
            clips_per_second=_rate(sums.get("timed_views", 0.0), sums.get("timed_seconds", 0.0))
            if sums.get("timed_views") else _rate(views, model_seconds),
            model_seconds=model_seconds,
            videos_per_second=_rate(len(records), model_seconds),
            duplicates=int(sums.get("duplicates", 0)),
        )
    skipped = stored.skipped + [entry for _, rank_skipped, _, _ in gathered for entry in rank_skipped]
    fallbacks = stored.fallbacks + [entry for _, _, rank_fallbacks, _ in gathered for entry in rank_fallbacks]
    earlier = sum(t.wall_seconds for (_, rank), t in stored.totals.items() if rank == 0)
    wall = this_totals[0].wall_seconds + earlier  # rank 0's clock
    world = fabric.world_size
    device = str(fabric.device) if world == 1 else f"{fabric.device.type} x{world} ({runtime.strategy})"
    return PassOutcome(outcomes, video_list, skipped, fallbacks, wall_seconds=wall,
                       wait_seconds=totals.wait_seconds, runs=stored.runs + 1, world_size=world, device=device)


def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan
