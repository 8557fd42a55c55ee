"""Build the data module and classifier a config describes, outside LightningCLI (for `evaluate`
and `compare`), with the same links: the data decides frames, crop size and classes
(videotok/settings.py)."""
from __future__ import annotations

from typing import Any, Optional

from videotok.data import KineticsDataModule
from videotok.reduce.choice import ReducerChoice
from videotok.settings import resolve_model_settings
from videotok.train.module import VideoClassifier


def build_datamodule(config: dict, **overrides: Any) -> KineticsDataModule:
    data = {**(config.get("data") or {}), **{k: v for k, v in overrides.items() if v is not None}}
    if "data_dir" not in data:
        raise ValueError("config has no data.data_dir: name the dataset folder")
    return KineticsDataModule(**data)


def trained_reducer(checkpoint: dict) -> Optional[ReducerChoice]:
    """The reducer a checkpoint was trained with (None when its hyperparameters do not say)."""
    trained = checkpoint.get("hyper_parameters", {})
    return ReducerChoice(trained["reducer"], dict(trained.get("reducer_args") or {})) if "reducer" in trained else None


def build_classifier(
    config: dict,
    datamodule: KineticsDataModule,
    reducer: Optional[ReducerChoice] = None,
    checkpoint: Optional[dict] = None,
    **overrides: Any,
) -> VideoClassifier:
    """The config's classifier; `reducer` replaces its reducer (and arguments). With a
    `checkpoint` and no `reducer`, the reducer it was trained with is used, then its weights.
    `overrides`: other VideoClassifier options (fine-tuning's optimisation, `init_checkpoint`)."""
    if reducer is None and checkpoint is not None:
        reducer = trained_reducer(checkpoint)
    settings = resolve_model_settings(config, reducer, num_classes=datamodule.num_classes)
    options = {**(config.get("model") or {}), **settings.classifier_args(), **overrides}
    if checkpoint is not None:
        options.pop("init_checkpoint", None)
    classifier = VideoClassifier(**options)
    if checkpoint is not None:
        classifier.on_load_checkpoint(checkpoint)
        classifier.load_state_dict(checkpoint["state_dict"])
    return classifier
