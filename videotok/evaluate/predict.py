"""``predict``: the top-k classes of one video, its views decoded and cropped exactly as in evaluation.

The views go through the evaluation data path itself (``VideoClipDataset`` on a one-video list, in
this process), so a prediction and an ``evaluate`` row of the same video see the same pixels.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

import torch
from torch import Tensor, nn

from videotok.data.dataset import VideoClipDataset
from videotok.data.pytorchvideo_compat import LabeledVideoPaths
from videotok.data.transforms import eval_clip_transform, eval_view_transform
from videotok.data.video_reader import NO_FALLBACK
from videotok.flops import full_token_cost, measure_cost
from videotok.models.published import Preprocessing


@dataclass
class Prediction:
    """What `videotok predict` prints: class names with probabilities (softmax averaged over views)."""

    video: str
    model: str
    weights: str
    reducer: str
    reducer_args: dict[str, Any]
    views: tuple[int, int]
    top: list[tuple[str, float]]  # (class name, probability), best first
    gflops_per_view: float
    full_gflops_per_view: float  # the same backbone without reduction
    preprocessing: dict[str, Any] = field(default_factory=dict)

    def to_text(self) -> str:
        clips, crops = self.views
        reducer = f"{self.reducer} {' '.join(f'{k}={v}' for k, v in self.reducer_args.items())}".rstrip()
        lines = [f"video: {self.video} ({clips} clips x {crops} crops)",
                 f"model: {self.model} ({self.weights}), reducer: {reducer}"]
        if self.reducer != "none":
            saved = 100.0 * (1.0 - self.gflops_per_view / self.full_gflops_per_view)
            lines.append(f"GFLOPs per view: {self.gflops_per_view:.4g} (full tokens {self.full_gflops_per_view:.4g}: "
                         f"{saved:.1f} % saved)")
        else:
            lines.append(f"GFLOPs per view: {self.gflops_per_view:.4g}")
        width = max(len(name) for name, _ in self.top)
        lines.append(f"top-{len(self.top)}:")
        lines += [f"  {i}. {name:<{width}}  {100 * p:5.1f} %" for i, (name, p) in enumerate(self.top, start=1)]
        return "\n".join(lines)

    def to_json(self) -> str:
        data = asdict(self)
        data["top"] = [{"class": name, "probability": p} for name, p in self.top]
        return json.dumps(data, indent=2)


def datamodule_preprocessing(datamodule: Any, views: Optional[tuple[int, int]] = None) -> Preprocessing:
    """The test-time preprocessing of a KineticsDataModule (its test views unless `views` says
    otherwise), so one video is decoded as that data's evaluation decodes it."""
    return Preprocessing(
        num_frames=datamodule.num_frames, sampling_rate=datamodule.sampling_rate,
        short_side=datamodule.eval_short_side, crop_size=datamodule.crop_size,
        mean=tuple(datamodule.mean), std=tuple(datamodule.std), views=tuple(views or datamodule.test_views),
    )


def decode_views(path: str, preprocessing: Preprocessing, decoder: str = "decord",
                 fallback_decoder: str = "pyav") -> Tensor:
    """Every test view of the video at `path`: [V, C, T, H, W], V = clips x crops, view order
    `clip * crops + crop`. Raises ValueError naming the file when no decoder can read it."""
    dataset = VideoClipDataset(
        LabeledVideoPaths([(str(path), 0)]), num_classes=1,
        transform=eval_clip_transform(preprocessing.num_frames, preprocessing.short_side),
        training=False, num_frames=preprocessing.num_frames, sampling_rate=preprocessing.sampling_rate,
        views=preprocessing.views,
        view_transform=eval_view_transform(preprocessing.crop_size, preprocessing.views[1],
                                           preprocessing.mean, preprocessing.std),
        decoder=decoder, fallback_decoder=fallback_decoder or NO_FALLBACK, rank=0, world_size=1,
    )
    samples = list(dataset)
    views = [s for s in samples if "video" in s]
    if not views:
        reasons = "; ".join(reason for s in samples for _, reason in s.get("skipped", ()))
        raise ValueError(f"--video {path}: cannot be read ({reasons or 'no frames'})")
    views.sort(key=lambda s: s["view_index"])
    return torch.stack([s["video"] for s in views])


def centre_view(path: str, preprocessing: Preprocessing, decoder: str = "decord",
                fallback_decoder: str = "pyav") -> Tensor:
    """The centre view [C, T, H, W] of the video at `path`: one clip, the centre crop, decoded as an
    evaluation with 1x1 views decodes it (what the token pictures draw)."""
    return decode_views(path, replace(preprocessing, views=(1, 1)), decoder, fallback_decoder)[0]


def predict(model: nn.Module, views: Tensor, classes: list[str], topk: int = 5, batch_size: int = 8,
            device: str | torch.device = "cpu") -> list[tuple[str, float]]:
    """The `topk` classes of the softmax averaged over `views` [V, C, T, H, W]."""
    device = torch.device(device)
    model.to(device).eval()
    probabilities = torch.zeros(len(classes), device=device)
    with torch.inference_mode():
        for start in range(0, views.shape[0], batch_size):
            logits = model(views[start : start + batch_size].to(device))
            probabilities += logits.float().softmax(dim=-1).sum(0)
    probabilities /= views.shape[0]
    top = probabilities.topk(min(topk, len(classes)))
    return [(classes[i], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist())]


def predict_video(model: nn.Module, path: str, preprocessing: Preprocessing, classes: list[str], weights: str,
                  reducer_args: dict[str, Any], topk: int = 5, device: str = "cpu", decoder: str = "decord",
                  fallback_decoder: str = "pyav") -> Prediction:
    """Decode `path`'s views, predict with `model` (a backbone whose reducer was built with
    `reducer_args`), and count the cost with and without its reducer."""
    if len(classes) != model.num_classes:
        raise ValueError(f"{len(classes)} class names for a model with {model.num_classes} classes")
    views = decode_views(path, preprocessing, decoder, fallback_decoder)
    top = predict(model, views, classes, topk, device=device)
    return Prediction(
        video=str(path), model=model.model_name, weights=weights, reducer=model.reducer.name,
        reducer_args=dict(reducer_args), views=preprocessing.views,
        top=top, gflops_per_view=measure_cost(model).gflops, full_gflops_per_view=full_token_cost(model).gflops,
        preprocessing=asdict(preprocessing),
    )
