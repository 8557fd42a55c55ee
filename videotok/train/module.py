"""VideoClassifier: a video backbone with an optional token reducer, trained as a clip classifier.

Metrics here are clip-level (each sampled clip or view scored alone); video-level, multi-view
numbers come from `videotok evaluate`. Every hyper-parameter is a flat, typed argument so that it
is a YAML key of the LightningCLI for free.
"""
from __future__ import annotations

import logging
import sys
from typing import Any, Optional

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.strategies import DDPStrategy, Strategy
from torch import Tensor
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from videotok.data.failures import FailureTracker, count_loaded_videos
from videotok.models import create_model
from videotok.models.pretrained import load_image_weights
from videotok.models.published import PublishedCheckpoint, load_published
from videotok.reduce import Reducer, build_reducer
from videotok.train.checkpoint import upgrade_checkpoint, upgrade_on_load
from videotok.train.optim import build_optimizer, parameter_groups, warmup_cosine

# Saved in every checkpoint: how merged TimeSformer tokens attended while it was trained (absent
# before they kept divided attention).
ATTENTION_KEY, DIVIDED_AFTER_MERGE, JOINT_AFTER_MERGE = "videotok_merged_attention", "divided", "joint"
CLASSES_KEY = "videotok_classes"  # the class names it was trained on (label i = logit i), from the data

STAGES = ("train", "val", "test")
log = logging.getLogger("videotok.train")


def declare_static_graph(strategy: Strategy, reducer: str) -> None:
    """Tell DDP that a reducer fixes which parameters a step uses (some are legitimately unused:
    e.g. TimeSformer's temporal branches once the token grid is gone, blocks a strategy bypasses),
    unless the user chose the DDP options. Plain DDP would stop at the first step ("parameters
    that were not used in producing the loss"); a static graph finds the unused set once, in the
    first step, where `find_unused_parameters` would search the graph at every step."""
    if reducer == "none" or not isinstance(strategy, DDPStrategy):
        return
    options = strategy._ddp_kwargs  # what DDPStrategy passes to DistributedDataParallel
    if "static_graph" not in options and "find_unused_parameters" not in options:
        options["static_graph"] = True


def fitting_published(source: str, format: Optional[str], pretrained: Optional[str], classes: Optional[str] = None,
                      num_heads: Optional[int] = None, keep: Optional[list[str]] = None,
                      **shape: int) -> PublishedCheckpoint:
    """The published checkpoint `source` (`classes`: a class-name file, `num_heads`: its heads, `keep`:
    only these of its classes), after checking that it takes the clips (`shape`: num_frames,
    img_size) the data gives. Its classes may differ: training then gives it a new head for the
    data's classes (what fine-tuning a Kinetics checkpoint on one's own classes is)."""
    if pretrained:
        raise ValueError("model.pretrained (image weights to start training from) and model.published (a "
                         "trained video checkpoint) exclude each other: set one")
    checkpoint = load_published(source, format, classes=classes, num_heads=num_heads)
    if keep:
        checkpoint = checkpoint.restricted(list(keep))
    wanted = {k: checkpoint.model_args[k] for k in ("num_frames", "img_size")}
    wrong = [f"{k}={shape[k]} (it has {v})" for k, v in wanted.items() if shape[k] != v]
    if wrong:
        raise ValueError(f"model.published={source}: the data gives {', '.join(wrong)}; set the data options to "
                         "the checkpoint's preprocessing (leave data.num_frames and data.crop_size out)")
    return checkpoint


def published_summary(checkpoint: PublishedCheckpoint, num_classes: int) -> str:
    """What training starts from: the backbone's tensors and, for other classes, the new head."""
    new = checkpoint.new_head(num_classes)
    loaded = len(checkpoint.state_dict) - len(new)
    line = f"model.published {checkpoint.source}: {loaded} tensors loaded"
    if not new:
        return f"{line}, its {num_classes}-class head included"
    log.info("new (initialised as the model's own head): %s", ", ".join(new))
    return (f"{line} (the backbone); new head for the data's {num_classes} classes ({', '.join(new)}; "
            f"the checkpoint's head has {len(checkpoint.classes)} classes and is not used)")


class VideoClassifier(L.LightningModule):
    """Backbone `model` (a registry name) with reducer `reducer` (a registry name + its arguments).

    `pretrained`: a local timm ViT/DeiT state dict to inflate (start of a Kinetics recipe).
    `published`: a published video checkpoint (file, folder or hub id; `published_format` names its
    format when detection is not wanted, videotok/models/published): it decides the backbone, so
    `model`, `model_args` and `tubelet_size` are not read (the hyperparameters record its model),
    and it must take `num_frames` x `img_size` clips and have `num_classes` classes (other classes:
    a new head). `published_classes`: a class-name file for a checkpoint that carries none;
    `published_keep`: only these of its classes (evaluating a K710 checkpoint on Kinetics-400:
    set by train/build.py, not by hand). `num_heads`: the attention heads (a published checkpoint's
    where its files do not state them; else an override of the model's).
    `init_checkpoint`: a videotok checkpoint whose weights start this run (fine-tuning a reducer
    that adds parameters from a full-token checkpoint); only the reducer's own parameters may be
    missing from it. Optimiser state is not taken from it (that is what `--ckpt_path` resumes).

    The reducer is held once, by the backbone (`model.reducer`, its parameters `model.reducer.*`);
    checkpoints of release 0.1.0, which also stored them as `reducer.*`, load unchanged
    (videotok/train/checkpoint.py).
    """

    def __init__(
        self,
        model: str = "timesformer_base_patch16_224",
        num_classes: int = 400,
        num_frames: int = 8,
        img_size: int = 224,
        tubelet_size: Optional[int] = None,
        model_args: Optional[dict[str, Any]] = None,
        pretrained: Optional[str] = None,
        published: Optional[str] = None,
        published_format: Optional[str] = None,
        published_classes: Optional[str] = None,
        published_keep: Optional[list[str]] = None,
        num_heads: Optional[int] = None,
        init_checkpoint: Optional[str] = None,
        reducer: str = "none",
        reducer_args: Optional[dict[str, Any]] = None,
        optimizer: str = "adamw",
        lr: float = 1e-4,
        weight_decay: float = 0.05,
        momentum: float = 0.9,
        warmup_epochs: float = 1.0,
        min_lr: float = 1e-6,
        label_smoothing: float = 0.1,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._loaded: Optional[str] = None  # what the starting weights gave the model, said when training starts
        reducer_module = build_reducer(reducer, **(reducer_args or {}))
        if published:
            shape = dict(num_classes=num_classes, num_frames=num_frames, img_size=img_size)
            checkpoint = fitting_published(published, published_format, pretrained, published_classes, num_heads,
                                           published_keep, **shape)
            # build() hands it over for inference
            self.model = checkpoint.build(reducer_module, num_classes=num_classes).train()
            self._loaded = published_summary(checkpoint, num_classes)
            backbone_args = {k: v for k, v in checkpoint.model_args.items() if k not in shape}
            self.hparams.update(model=checkpoint.model, model_args=backbone_args, tubelet_size=None)
        else:
            overrides = dict(model_args or {})
            if num_heads is not None:
                overrides["num_heads"] = num_heads
            if tubelet_size is not None:
                overrides["tubelet_size"] = tubelet_size
            self.model = create_model(
                model, reducer=reducer_module, num_classes=num_classes, num_frames=num_frames, img_size=img_size,
                **overrides,
            )
            if pretrained:
                self._loaded = load_image_weights(self.model, pretrained).summary()
        build_optimizer([{"params": [torch.zeros(1)]}], optimizer, lr)  # fail now on a bad name
        if init_checkpoint:
            self._load_initial_weights(init_checkpoint)
        top5 = min(5, num_classes)
        for stage in STAGES:  # one set per stage: `<stage>_metrics`
            setattr(self, f"{stage}_metrics", torch.nn.ModuleDict({
                "clip_top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
                f"clip_top{top5}": MulticlassAccuracy(num_classes, top_k=top5, average="micro"),
                "loss": MeanMetric(),
                "videos": SumMetric(),
                **({} if stage == "train" else {"skipped_videos": SumMetric(), "decoder_fallbacks": SumMetric()}),
            }))
        self._local_trackers: dict[str, FailureTracker] = {}
        self._train_totals = (0, 0)  # DDP: (failed, attempted) over every process, last train step
        self.register_load_state_dict_pre_hook(upgrade_on_load)

    @property
    def reducer(self) -> Reducer:
        """The one reducer, held by the backbone."""
        return self.model.reducer

    # -- weights ---------------------------------------------------------------------------
    def _load_initial_weights(self, path: str) -> None:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        state = checkpoint.get("state_dict", checkpoint)
        state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        foreign = [k for k in missing if ".reducer." not in f".{k}"] + list(unexpected)
        if foreign:
            raise ValueError(
                f"init_checkpoint={path!r} does not fit model={self.hparams.model!r}: "
                f"{len(foreign)} mismatched weights, e.g. {foreign[:3]}"
            )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record how merged tokens attended, so a resumed or evaluated run attends the same way,
        and the data's class names (fine-tuned from a published checkpoint, the run's classes are
        the data's, not the checkpoint's)."""
        divided = all(block.divided_after_merge for block in self.model.blocks)
        checkpoint[ATTENTION_KEY] = DIVIDED_AFTER_MERGE if divided else JOINT_AFTER_MERGE
        classes = getattr(getattr(self._trainer, "datamodule", None), "classes", None)
        if classes is not None:
            checkpoint[CLASSES_KEY] = list(classes)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Bring a 0.1.0 checkpoint to today's layout (in place, before Lightning loads it), and name
        the cause when a checkpoint and the configured reducer disagree on parameters.

        A checkpoint saved before merged TimeSformer tokens kept divided attention, whose reducer
        was trained with it (it adds parameters), learned joint attention after each merge: it keeps
        running that way, so its results stay what they were. Training-free reducers on such a
        checkpoint (a full-token baseline) get divided attention, which is what the baseline learned."""
        upgrade_checkpoint(checkpoint, self, parameter_groups(self, self.hparams.weight_decay))
        saved = checkpoint.get(ATTENTION_KEY)
        legacy = saved == JOINT_AFTER_MERGE or (saved is None and self.reducer.adds_parameters)
        for block in self.model.blocks:
            block.divided_after_merge = not legacy
        ours = set(self.state_dict())
        theirs = set(checkpoint.get("state_dict", {}))
        missing = sorted(k for k in ours - theirs if not k.partition(".")[0].endswith("_metrics"))
        unexpected = sorted(k for k in theirs - ours if not k.partition(".")[0].endswith("_metrics"))
        if missing or unexpected:
            trained = checkpoint.get("hyper_parameters", {}).get("reducer", "?")
            raise ValueError(
                f"checkpoint was trained with reducer={trained!r}, but reducer="
                f"{self.hparams.reducer!r} is configured and their parameters differ "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]}). Only reducers that add no "
                "parameters run training-free on a checkpoint; fine-tune the others with "
                "`videotok fit ... --model.init_checkpoint CKPT`."
            )

    def setup(self, stage: str) -> None:
        if stage == "fit":
            declare_static_graph(self.trainer.strategy, self.hparams.reducer)

    def on_fit_start(self) -> None:
        """Say once what the starting weights gave the model (`model.pretrained`, `model.published`):
        here, so that evaluating a checkpoint, which rebuilds the model too, does not say it."""
        if self._loaded and self.trainer.is_global_zero:
            resumed = f" (resuming {self.trainer.ckpt_path}: its weights replace these)" if self.trainer.ckpt_path else ""
            print(self._loaded + resumed, flush=True)

    # -- steps -----------------------------------------------------------------------------
    def forward(self, video: Tensor) -> Tensor:
        return self.model(video)

    def _tracker(self, stage: str) -> FailureTracker:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        if datamodule is not None and hasattr(datamodule, "failure_tracker"):
            return datamodule.failure_tracker(stage)
        return self._local_trackers.setdefault(stage, FailureTracker(name=f"{stage} data"))

    def _processes(self) -> int:
        return self.trainer.world_size if self._trainer is not None else 1

    # Under DDP every collective must run on every rank in the same order, whatever callbacks run
    # on rank 0 only (the progress bar computes, and so syncs, the epoch metrics in its own
    # `on_train_epoch_end`, before this module's hook). So: training reduces its failure counts in
    # `training_step` (every rank runs the same steps); evaluation logs them as metrics (synced
    # with the others, in one order) and applies the limit once they are computed.

    def _step(self, batch: dict, stage: str) -> Optional[Tensor]:
        tracker = self._tracker(stage)
        distributed = self._processes() > 1
        # One process: raises as soon as too many videos certainly fail; several: see above.
        skipped = tracker.update(batch, check=not distributed)
        for path, reason in skipped:
            print(f"skipped {path}: {reason}", file=sys.stderr)  # every rank reports its own
        fallbacks = batch.get("fallbacks", ())
        for path, decoder, reason in fallbacks:
            print(f"read by {decoder} {path}: {reason}", file=sys.stderr)
        metrics = getattr(self, f"{stage}_metrics")
        metrics["videos"].update(count_loaded_videos(batch))
        if stage == "train":
            failed, fallen_back = (self._train_counts_so_far(tracker) if distributed
                                   else (tracker.failed, tracker.fallback_count))
            self.log("train/skipped_videos", float(failed), on_step=True, on_epoch=False)
            self.log("train/decoder_fallbacks", float(fallen_back), on_step=True, on_epoch=False)
        else:
            metrics["skipped_videos"].update(len(skipped))
            metrics["decoder_fallbacks"].update(len(fallbacks))
        video, label = batch["video"], batch["label"]
        batch_size = max(1, video.shape[0])
        for name, metric in metrics.items():  # every step, so every rank logs the same metrics
            if stage == "train" and name == "loss":
                continue  # logged per step below
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True,
                     prog_bar=name == "clip_top1", batch_size=batch_size)
        if video.shape[0] == 0:  # every video of this batch failed to load
            return self._blank_step() if stage == "train" and distributed else None
        logits = self(video)
        loss = F.cross_entropy(logits, label, label_smoothing=self.hparams.label_smoothing)
        if stage != "train":
            metrics["loss"].update(loss.detach(), weight=video.shape[0])
        for name, metric in metrics.items():
            if name.startswith("clip_"):
                metric.update(logits.detach(), label)
        if stage == "train":
            self.log("train/loss", loss.detach(), on_step=True, on_epoch=True, prog_bar=True,
                     batch_size=video.shape[0], sync_dist=True)
        return loss

    def _train_counts_so_far(self, tracker: FailureTracker) -> tuple[int, int]:
        """DDP: this pass's failed and fallback-decoded videos summed over every process (a
        collective), the failure limit applied to them: every rank gets the same totals and stops
        at the same step."""
        counts = torch.tensor([tracker.failed, tracker.attempted, tracker.expected or 0, tracker.fallback_count],
                              dtype=torch.long, device=self.device)
        failed, attempted, expected, fallen_back = (
            int(v) for v in self.trainer.strategy.reduce(counts, reduce_op="sum").tolist())
        self._train_totals = (failed, attempted)
        tracker.check_totals(failed, attempted, self._processes(), expected=expected or None, final=False)
        return failed, fallen_back

    def _blank_step(self) -> Tensor:
        """DDP, a batch whose every video failed: this rank must still run forward and backward,
        or the gradient all-reduce of the other ranks waits for it. A blank clip of the usual shape,
        times zero, uses the same parameters as a real step and adds nothing to the gradients."""
        model = self.model
        blank = torch.zeros(1, model.in_chans, model.num_frames, model.img_size, model.img_size, device=self.device)
        return self(blank).sum() * 0.0

    def training_step(self, batch: dict, batch_idx: int) -> Optional[Tensor]:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "test")

    def on_train_epoch_start(self) -> None:
        self._train_totals = (0, 0)

    def on_train_epoch_end(self) -> None:
        tracker = self._tracker("train")
        if self._processes() == 1:
            tracker.check(final=True)
        else:  # the totals of the last step: no collective here (see above)
            tracker.check_totals(*self._train_totals, self._processes())

    def _evaluation_end(self, stage: str) -> None:
        """The failure limit on a finished evaluation pass, from the synced epoch metrics."""
        if self.trainer.sanity_checking:
            return
        tracker = self._tracker(stage)
        if self._processes() == 1:
            tracker.check(final=True)
            return
        computed = self.trainer.callback_metrics
        failed = int(computed.get(f"{stage}/skipped_videos", 0))
        attempted = failed + int(computed.get(f"{stage}/videos", 0))
        tracker.check_totals(failed, attempted, self._processes())

    def on_validation_end(self) -> None:
        self._evaluation_end("val")

    def on_test_end(self) -> None:
        self._evaluation_end("test")

    # -- optimisation ----------------------------------------------------------------------
    def configure_optimizers(self) -> dict:
        hp = self.hparams
        optimizer = build_optimizer(parameter_groups(self, hp.weight_decay), hp.optimizer, hp.lr, hp.momentum)
        total = int(self.trainer.estimated_stepping_batches)
        epochs = max(1, self.trainer.max_epochs or 1)
        warmup = round(hp.warmup_epochs * total / epochs)
        factor = warmup_cosine(total, warmup, hp.min_lr / hp.lr if hp.lr > 0 else 0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
