"""videotok's public Python API (re-exported by `import videotok`): what the command line does, as
functions. The commands are built on these (predict, visualize and flops load and count through
them), so a result from Python and from the CLI come from the same code.

    model = videotok.load("MCG-NJU/videomae-base-finetuned-kinetics", "tome", r=8)
    clip = videotok.read_clip("video.mp4", model)             # [1, C, T, H, W], its preprocessing
    logits = model(clip)
    videotok.count_gflops(model)                               # GFLOPs per view
    with videotok.using_reducer(model, "evit", keep_rate=0.7): # another reduction, same weights
        ...
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from torch import Tensor, nn

from videotok.models.base import VideoBackbone
from videotok.models.published import Preprocessing
from videotok.patching import backbone_of, is_patched, patch, unpatch
from videotok.patching.host import attach_reducer, fit_reducer
from videotok.reduce.base import Reducer
from videotok.reduce.choice import ReducerChoice
from videotok.reduce.registry import build_reducer, list_reducers

__all__ = ["Loaded", "build_reducer", "count_gflops", "create_model", "evaluate", "load", "load_with_details",
           "patch", "read_clip", "reducers", "set_reducer", "unpatch", "using_reducer"]

ReducerLike = Union[str, Reducer, ReducerChoice, None]


@dataclass
class Loaded:
    """A loaded model with what came with it (`load` returns `model`, these attached to it)."""

    model: VideoBackbone  # eval mode; `.preprocessing` and `.classes` set
    preprocessing: Preprocessing  # what its authors (or its training run) fed it at test time
    classes: list[str]  # class i = logit i
    weights: str  # where the weights came from, as the CLI prints it
    reducer_args: dict[str, Any]  # the arguments its reducer was built with


def reducers() -> list[str]:
    """The registered reducer names (`videotok reducers` describes them)."""
    return list_reducers()


def _reducer(reducer: ReducerLike, args: dict[str, Any]) -> Optional[Reducer]:
    """A name (or preset file) with its arguments, a ReducerChoice or a built Reducer -> a new Reducer."""
    if reducer is None:
        if args:
            raise ValueError(f"reducer arguments {', '.join(args)} without a reducer name")
        return None
    if isinstance(reducer, Reducer):
        if args:
            raise ValueError("reducer arguments go with a reducer name, not with a built Reducer")
        return reducer
    if isinstance(reducer, ReducerChoice):
        return ReducerChoice(reducer.name, {**reducer.args, **args}).build()
    choice = ReducerChoice.from_flags(reducer)  # a name, or a preset file (configs/reducer/*.yaml)
    return ReducerChoice(choice.name, {**choice.args, **args}).build()


def _reducer_args(reducer: ReducerLike, args: dict[str, Any]) -> dict[str, Any]:
    if isinstance(reducer, ReducerChoice):
        return {**reducer.args, **args}
    if isinstance(reducer, str):
        return {**ReducerChoice.from_flags(reducer).args, **args}
    return dict(args)


def create_model(name: str, reducer: ReducerLike = None, *, reducer_args: Optional[dict[str, Any]] = None,
                 pretrained: Optional[str] = None, **overrides: Any) -> VideoBackbone:
    """Backbone `name` (`videotok models` lists them) with `reducer` (name + `reducer_args`, or a
    Reducer) and model `overrides` (num_classes, num_frames, img_size, ...); `pretrained`: a timm
    ViT/DeiT state dict inflated to video (see `videotok.models.registry.create_model`)."""
    from videotok.models.registry import create_model as create

    return create(name, reducer=_reducer(reducer, dict(reducer_args or {})), pretrained=pretrained, **overrides)


def load(source: str, reducer: ReducerLike = None, *, config: Optional[str] = None, format: Optional[str] = None,
         classes: Optional[str] = None, num_classes: Optional[int] = None, num_heads: Optional[int] = None,
         **reducer_args: Any) -> VideoBackbone:
    """A model ready to predict: `[B, C, T, H, W]` -> logits, in eval mode, with `.preprocessing`
    (frames, sampling rate, resize, crop, mean, std, views) and `.classes` attached.

    source: a published checkpoint (a file, a transformers folder or a hub id; `format` and
    `classes` as `videotok predict --format/--classes`) or a videotok checkpoint (`.ckpt`, with
    `config` the experiment config it was trained with). reducer: a name (or preset file) with
    `reducer_args`, or a built Reducer; None keeps a videotok checkpoint's own, and none at all
    for a published one. num_classes: a published checkpoint with a new classifier of that width
    (to fine-tune on one's own classes; the rest of the weights load as strictly). num_heads: a
    published checkpoint's attention heads where its files do not state them (`--num-heads`)."""
    return load_with_details(source, reducer, config=config, format=format, classes=classes,
                             num_classes=num_classes, num_heads=num_heads, **reducer_args).model


def load_with_details(source: str, reducer: ReducerLike = None, *, config: Optional[str] = None,
                      format: Optional[str] = None, classes: Optional[str] = None, num_classes: Optional[int] = None,
                      num_heads: Optional[int] = None, **reducer_args: Any) -> Loaded:
    """`load`, with where the weights came from and the reducer's arguments (what the CLI prints)."""
    if str(source).endswith(".ckpt") or config is not None:
        if config is None:
            raise ValueError(f"{source}: a videotok checkpoint needs config=..., the experiment config it was "
                             "trained with (its data folder gives the classes and preprocessing)")
        if num_classes is not None or num_heads is not None:
            raise ValueError("num_classes and num_heads are for published checkpoints; a videotok checkpoint states "
                             "its own")
        loaded = _load_trained(str(source), config, reducer, reducer_args)
    else:
        loaded = _load_published(str(source), format, classes, num_classes, num_heads, reducer, reducer_args)
    loaded.model.preprocessing, loaded.model.classes = loaded.preprocessing, loaded.classes
    return loaded


def _load_published(source: str, format: Optional[str], classes: Optional[str], num_classes: Optional[int],
                    num_heads: Optional[int], reducer: ReducerLike, reducer_args: dict[str, Any]) -> Loaded:
    from videotok.models.published import load_published

    checkpoint = load_published(source, format, classes=classes, num_heads=num_heads)
    model = checkpoint.build(_reducer(reducer, reducer_args), num_classes=num_classes)
    names = checkpoint.classes if model.num_classes == len(checkpoint.classes) else \
        [f"class {i}" for i in range(model.num_classes)]
    return Loaded(model, checkpoint.preprocessing, names, f"published {checkpoint.source}",
                  _reducer_args(reducer, reducer_args))


def _load_trained(ckpt_path: str, config_path: str, reducer: ReducerLike, reducer_args: dict[str, Any]) -> Loaded:
    from videotok.config import load_config
    from videotok.evaluate.predict import datamodule_preprocessing
    from videotok.train.build import build_classifier, build_datamodule
    from videotok.train.checkpoint import load_checkpoint

    if isinstance(reducer, Reducer):
        raise ValueError("a videotok checkpoint's reducer is given by name (and arguments), not as a Reducer")
    choice = None  # the checkpoint's own reducer
    if reducer is not None:
        named = reducer if isinstance(reducer, ReducerChoice) else ReducerChoice.from_flags(reducer)
        choice = ReducerChoice(named.name, {**named.args, **reducer_args})
    config = load_config(config_path)
    datamodule = build_datamodule(config)
    classifier = build_classifier(config, datamodule, choice, checkpoint=load_checkpoint(ckpt_path))
    return Loaded(classifier.model.eval(), datamodule_preprocessing(datamodule), datamodule.classes,
                  f"checkpoint {ckpt_path}", dict(classifier.hparams.reducer_args or {}))


def _backbone(model: nn.Module) -> VideoBackbone:
    """The videotok backbone `model` runs: itself, a patched model's, or a LightningModule's `.model`."""
    if is_patched(model):
        return backbone_of(model)
    from videotok.evaluate.engine import find_backbone

    return find_backbone(model)


def set_reducer(model: nn.Module, reducer: ReducerLike, **reducer_args: Any) -> Reducer:
    """Make `reducer` the reduction `model` runs (a backbone, a patched model, or a module holding a
    backbone as `.model`), keeping its weights; returns the reducer it had. A strategy that does not
    fit the backbone is refused before anything changes."""
    backbone = _backbone(model)
    previous = backbone.reducer
    built = _reducer(reducer if reducer is not None else "none", reducer_args)
    attach_reducer(backbone, built)
    return previous


@contextlib.contextmanager
def using_reducer(model: nn.Module, reducer: ReducerLike, **reducer_args: Any) -> Iterator[nn.Module]:
    """`set_reducer` for a `with` block; the model's own reducer is back afterwards, whatever happens."""
    backbone = _backbone(model)
    built = fit_reducer(backbone, _reducer(reducer if reducer is not None else "none", reducer_args))
    with backbone.reducer_swapped(built):
        yield model


def count_gflops(model: nn.Module, clip: Optional[Tensor] = None) -> float:
    """GFLOPs per view (one multiply-add = one FLOP, the papers' convention) of one forward of
    `model`'s backbone on `clip` [B, C, T, H, W] (default: a blank clip of its input shape, as
    `videotok flops` counts)."""
    from videotok.flops import measure_cost

    return measure_cost(_backbone(model), video=clip).gflops


def read_clip(path: str, preprocessing: Union[Preprocessing, nn.Module], views: Optional[tuple[int, int]] = None,
              decoder: str = "decord") -> Tensor:
    """The views of the video at `path` as evaluation decodes them: [V, C, T, H, W], V = clips x crops
    (default views (1, 1): one centred clip, the centre crop, so `model(read_clip(path, model))` is
    a prediction). `preprocessing`: a Preprocessing, or a model from `load` (its own)."""
    from videotok.evaluate.predict import decode_views

    if isinstance(preprocessing, nn.Module):
        preprocessing = getattr(preprocessing, "preprocessing", None)
        if preprocessing is None:
            raise ValueError("this model carries no preprocessing (only `videotok.load`'s do): pass a Preprocessing")
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    return decode_views(path, replace(preprocessing, views=tuple(views or (1, 1))), decoder)


def evaluate(model: nn.Module, data_dir: str, views: Optional[tuple[int, int]] = None, split: str = "test",
             **options: Any) -> Any:
    """Clip- and video-level accuracy of `model` on the Kinetics-layout folder `data_dir`: the same
    EvaluationResult `videotok evaluate` writes (`videotok.evaluate.folder.evaluate_folder` has the
    options). `videotok.evaluate(...)` calls this too: the package is callable."""
    from videotok.evaluate.folder import evaluate_folder

    return evaluate_folder(model, data_dir, views, split, **options)
