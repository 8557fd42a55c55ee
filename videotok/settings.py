"""What a config asks of the backbone, worked out in one place.

The `data:` section decides the clip the model sees (frames, crop size) and, through its class
list, the classifier width; the `model:` section names the backbone, its tubelet, extra backbone
arguments and the reducer. With `model.published` (a published video checkpoint) the checkpoint
decides the backbone, and its preprocessing fills the data options the config leaves out. Training
links the same options (DATA_LINKS, in LightningCLI), and `evaluate`, `compare` and `flops` call
`resolve_model_settings`, so none of them derives these again. `ModelSettings.spec()` gives the BackboneSpec a reducer is bound to without making weights.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from videotok.models import model_spec
from videotok.reduce.base import BackboneSpec
from videotok.reduce.choice import ReducerChoice

if TYPE_CHECKING:
    from videotok.models.published import PublishedCheckpoint

# data option -> model option it decides (LightningCLI links exactly these; num_classes comes from
# the data's class list, linked on instantiation).
DATA_LINKS = {"num_frames": "num_frames", "crop_size": "img_size"}


@dataclass(frozen=True)
class ModelSettings:
    """A backbone by name with everything a config sets on it. `num_classes` None: the backbone's
    default (only the classifier's width depends on it)."""

    model: str
    num_frames: int
    img_size: int
    tubelet_size: Optional[int] = None
    num_classes: Optional[int] = None
    model_args: dict[str, Any] = field(default_factory=dict)
    reducer: ReducerChoice = field(default_factory=ReducerChoice)
    published: Optional[str] = None  # a published video checkpoint the weights come from
    published_format: Optional[str] = None

    def backbone_overrides(self) -> dict[str, Any]:
        """The `create_model(self.model, **overrides)` arguments (the reducer aside)."""
        out: dict[str, Any] = {**self.model_args, "num_frames": self.num_frames, "img_size": self.img_size}
        if self.tubelet_size is not None:
            out["tubelet_size"] = self.tubelet_size
        if self.num_classes is not None:
            out["num_classes"] = self.num_classes
        return out

    def spec(self) -> BackboneSpec:
        """What the reducer will be bound to; no weights are made."""
        return model_spec(self.model, **self.backbone_overrides())

    def classifier_args(self) -> dict[str, Any]:
        """The VideoClassifier arguments these settings fix (the rest of `model:` is optimisation)."""
        out = dict(model=self.model, num_frames=self.num_frames, img_size=self.img_size,
                   tubelet_size=self.tubelet_size, model_args=dict(self.model_args),
                   reducer=self.reducer.name, reducer_args=dict(self.reducer.args),
                   published=self.published, published_format=self.published_format)
        if self.num_classes is not None:
            out["num_classes"] = self.num_classes
        return out


def resolve_model_settings(
    config: dict[str, Any],
    reducer: Optional[ReducerChoice] = None,
    num_classes: Optional[int] = None,
) -> ModelSettings:
    """The settings `config` gives the backbone. `reducer` (the command line's) replaces the
    config's; `num_classes` is the data's class count where it is known."""
    model = config.get("model") or {}
    data = data_options(config)
    if reducer is None:
        reducer = ReducerChoice(model.get("reducer") or "none", dict(model.get("reducer_args") or {}))
    shape = {target: data.get(source, _data_default(source)) for source, target in DATA_LINKS.items()}
    checkpoint = published_checkpoint(config)
    if checkpoint is not None:
        args = {k: v for k, v in checkpoint.model_args.items() if k not in ("num_frames", "img_size", "num_classes")}
        return ModelSettings(model=checkpoint.model, num_classes=num_classes, model_args=args, reducer=reducer,
                             published=checkpoint.source, published_format=checkpoint.format, **shape)
    return ModelSettings(
        model=model.get("model") or _classifier_default("model"),
        tubelet_size=model.get("tubelet_size"),
        num_classes=num_classes,
        model_args={**(model.get("model_args") or {}),
                    **({"num_heads": model["num_heads"]} if model.get("num_heads") else {})},
        reducer=reducer,
        **shape,
    )


def published_checkpoint(config: dict[str, Any]) -> Optional["PublishedCheckpoint"]:
    """The checkpoint `model.published` names (read once per process), or None. `model.published_classes`
    (a class-name file) names its classes, `model.num_heads` states its heads, `model.published_keep`
    restricts it to those of its classes."""
    model = config.get("model") or {}
    if not model.get("published"):
        return None
    from videotok.models.published import load_published

    checkpoint = load_published(str(model["published"]), model.get("published_format"),
                                classes=model.get("published_classes"), num_heads=model.get("num_heads"))
    keep = model.get("published_keep")  # the data's classes, where it has more (train/build.py)
    return checkpoint.restricted(list(keep)) if keep else checkpoint


def data_options(config: dict[str, Any]) -> dict[str, Any]:
    """The `data:` section as the data module gets it. With `model.published`, the checkpoint's
    preprocessing fills what the section leaves out; the clip shape must be the checkpoint's."""
    data = dict(config.get("data") or {})
    checkpoint = published_checkpoint(config)
    if checkpoint is None:
        return data
    published = checkpoint.preprocessing.data_args()
    for option in DATA_LINKS:
        if option in data and data[option] != published[option]:
            raise ValueError(
                f"data.{option}={data[option]}, but the published checkpoint {checkpoint.source} takes "
                f"{option}={published[option]}: remove data.{option} (the checkpoint brings its preprocessing)"
            )
    return {**published, **data}


def _data_default(option: str) -> Any:
    """The data module's own default for `option` (what training uses when a config omits it)."""
    from videotok.data import KineticsDataModule

    return inspect.signature(KineticsDataModule.__init__).parameters[option].default


def _classifier_default(option: str) -> Any:
    from videotok.train.module import VideoClassifier

    return inspect.signature(VideoClassifier.__init__).parameters[option].default
