"""Build the data module and classifier a config describes, outside LightningCLI (for `evaluate`
and `compare`), with the same links: the data decides frames, crop size and classes."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional


from videotok.config import load_config
from videotok.data import KineticsDataModule
from videotok.train.module import VideoClassifier

LINKED = ("num_frames", "img_size", "num_classes")


def build_datamodule(config: dict, **overrides: Any) -> KineticsDataModule:
    data = {**(config.get("data") or {}), **{k: v for k, v in overrides.items() if v is not None}}
    if "data_dir" not in data:
        raise ValueError("config has no data.data_dir: name the dataset folder")
    return KineticsDataModule(**data)


def build_classifier(
    config: dict,
    datamodule: KineticsDataModule,
    reducer: Optional[str] = None,
    reducer_args: Optional[dict] = None,
    checkpoint: Optional[dict] = None,
    **overrides: Any,
) -> VideoClassifier:
    """The config's classifier; `reducer` replaces its reducer (and arguments). With a
    `checkpoint` and no `reducer`, the reducer it was trained with is used, then its weights."""
    model = dict(config.get("model") or {})
    for key in LINKED:
        model.pop(key, None)
    if reducer is None and checkpoint is not None:
        trained = checkpoint.get("hyper_parameters", {})
        if "reducer" in trained:
            reducer, reducer_args = trained["reducer"], trained.get("reducer_args")
    if reducer is not None:
        model["reducer"], model["reducer_args"] = reducer, dict(reducer_args or {})
    model.update(overrides)
    model.pop("init_checkpoint", None) if checkpoint is not None else None
    classifier = VideoClassifier(
        **model, num_frames=datamodule.num_frames, img_size=datamodule.crop_size,
        num_classes=datamodule.num_classes,
    )
    if checkpoint is not None:
        classifier.on_load_checkpoint(checkpoint)
        classifier.load_state_dict(checkpoint["state_dict"])
    return classifier


def build_from_config(path: str | Path) -> dict:
    return load_config(path)
