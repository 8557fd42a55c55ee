"""What a converted published checkpoint is: videotok weights, the model that takes them, its class
order and the preprocessing its authors tested it with. Building it is the only step that makes a
model, so several reducer variants share one conversion."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

import torch
from torch import Tensor

from videotok.models.base import VideoBackbone
from videotok.models.registry import create_model
from videotok.reduce.base import Reducer

HEAD = "head."  # the classifier's parameters, in every backbone


@dataclass(frozen=True)
class Preprocessing:
    """What the checkpoint's authors fed it at test time, in videotok's convention: frames divided
    by 255, then normalised by `mean` and `std` ([-1, 1] scaling is mean 0.5, std 0.5)."""

    num_frames: int
    sampling_rate: int  # frame interval in the video's own frames
    short_side: int  # test-time resize of the short side
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    views: tuple[int, int]  # published test views: (temporal clips, spatial crops)

    def data_args(self) -> dict[str, Any]:
        """KineticsDataModule keyword arguments. Validation gets the published views too: the
        Kinetics numbers papers report are measured on its validation split. Fine-tuning's scale
        jitter grows with the crop (256-320 px at 224, as videotok's default)."""
        return dict(
            num_frames=self.num_frames,
            train_scale=(round(self.crop_size * 256 / 224), round(self.crop_size * 320 / 224)),
            sampling_rate=self.sampling_rate,
            crop_size=self.crop_size,
            eval_short_side=self.short_side,
            mean=tuple(self.mean),
            std=tuple(self.std),
            val_views=tuple(self.views),
            test_views=tuple(self.views),
        )


@dataclass
class PublishedCheckpoint:
    """A published checkpoint converted to videotok: `build` makes the backbone.

    `notes` says where each preprocessing value came from (read from the checkpoint's files or a
    family default) and anything the conversion could not reproduce."""

    source: str  # as the user gave it
    format: str  # one of FORMATS
    model: str  # a registered videotok model name
    model_args: dict[str, Any]  # create_model overrides
    classes: list[str]  # class i = logit i, in the checkpoint's own order
    preprocessing: Preprocessing
    state_dict: dict[str, Tensor]  # videotok parameter names
    notes: list[str] = field(default_factory=list)
    class_restriction: Optional[str] = None  # set by `restricted`: which of its logits are kept, and why

    @property
    def has_class_names(self) -> bool:
        """False when the checkpoint carried no names and none were given ("class 0", ...)."""
        return self.classes != [f"class {i}" for i in range(len(self.classes))]

    def build(self, reducer: Optional[Reducer] = None, num_classes: Optional[int] = None) -> VideoBackbone:
        """`create_model(model, reducer=reducer, **model_args)` with the weights loaded strictly
        (only the reducer's own `reducer.*` parameters may stay as initialised), in eval mode.

        `num_classes` other than the checkpoint's (fine-tuning on one's own classes): the backbone
        is loaded as strictly and the classifier is a new one, initialised as the model's own."""
        if num_classes is None or num_classes == len(self.classes):
            model = create_model(self.model, reducer=reducer, **self.model_args)
            check_keys(self.state_dict, model.state_dict(), self.source)
            model.load_state_dict(self.state_dict, strict=False)
            return model.eval()
        model = create_model(self.model, reducer=reducer, **{**self.model_args, "num_classes": num_classes})
        backbone = {k: v for k, v in self.state_dict.items() if not k.startswith(HEAD)}
        check_keys(backbone, {k: v for k, v in model.state_dict().items() if not k.startswith(HEAD)}, self.source)
        model.load_state_dict(backbone, strict=False)
        return model.eval()

    def restricted(self, data_classes: list[str]) -> "PublishedCheckpoint":
        """This checkpoint scored on `data_classes` only, a subset of its own matched by name (K710 or
        K600 on Kinetics-400): its classifier keeps their rows, in the data's order, so the logits
        (and a softmax over them) are its logits of those classes. Named as the data names them."""
        from videotok.models.published.classes import match_classes, missing_classes

        match = match_classes(self.classes, data_classes)
        if match is None:
            missing = missing_classes(self.classes, data_classes)
            raise ValueError(f"{self.source}: {len(missing)} of the data's classes are not among its "
                             f"{len(self.classes)}: {missing[:5]}")
        rows = torch.tensor(match.rows)
        state = dict(self.state_dict)
        for name in (f"{HEAD}weight", f"{HEAD}bias"):
            state[name] = state[name].index_select(0, rows)  # [K_model, ...] -> [K_data, ...]
        said = match.describe()
        return replace(self, classes=list(data_classes), state_dict=state, class_restriction=said,
                       model_args={**self.model_args, "num_classes": len(data_classes)}, notes=[*self.notes, said])

    def new_head(self, num_classes: int) -> list[str]:
        """The parameter names `build(num_classes=num_classes)` leaves new (none for the
        checkpoint's own class count)."""
        if num_classes == len(self.classes):
            return []
        return [k for k in self.state_dict if k.startswith(HEAD)]


def check_keys(converted: dict[str, Tensor], target: dict[str, Tensor], source: str) -> None:
    """Refuse a conversion that does not fill `target` exactly: a missing or extra name, or a shape
    that differs, is named (reducer parameters are the only ones allowed to be missing)."""
    missing = [k for k in target if k not in converted and not k.startswith("reducer.")]
    extra = [k for k in converted if k not in target]
    shapes = [
        f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}"
        for k, v in converted.items()
        if k in target and tuple(v.shape) != tuple(target[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}")
    if extra:
        problems.append(f"unexpected {', '.join(extra[:6])}{' ...' if len(extra) > 6 else ''}")
    if shapes:
        problems.append(f"shapes differ: {'; '.join(shapes[:6])}")
    if problems:
        raise ValueError(f"{source}: the converted weights do not fit the model: {'; '.join(problems)}")


def meta_state(model: str, model_args: dict[str, Any]) -> dict[str, Tensor]:
    """The state dict `create_model(model, **model_args)` expects, without making any weights."""
    with torch.device("meta"):
        return create_model(model, **model_args).state_dict()
