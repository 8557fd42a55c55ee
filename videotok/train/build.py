"""Build the data module and classifier a config describes, outside LightningCLI (for `evaluate`
and `compare`), with the same links: the data decides frames, crop size and classes
(videotok/settings.py)."""
from __future__ import annotations

from typing import Any, Optional

from videotok.data import KineticsDataModule
from videotok.data.labels import check_class_order
from videotok.reduce.choice import ReducerChoice
from videotok.settings import data_options, published_checkpoint, resolve_model_settings
from videotok.train.module import VideoClassifier

CLASS_ORDER_FIX = ("Write the data folder in the checkpoint's class order: python -m data_tools.kinetics ... "
                   "--classes-from CHECKPOINT")


def build_datamodule(config: dict, **overrides: Any) -> KineticsDataModule:
    """The config's data module (with `model.published`, the checkpoint's preprocessing where the
    config is silent); `overrides` that are not None replace its options."""
    data = {**data_options(config), **{k: v for k, v in overrides.items() if v is not None}}
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
    published = published_checkpoint(config)
    if published is not None and published.has_class_names:  # else the data's names are taken as its
        check_class_order(datamodule.classes, str(datamodule.data_dir / "classes.txt"), published.classes,
                          f"the published checkpoint {published.source}", fix=CLASS_ORDER_FIX)
    options = {**(config.get("model") or {}), **settings.classifier_args(), **overrides}
    if checkpoint is not None:
        options.pop("init_checkpoint", None)
    classifier = VideoClassifier(**options)
    if checkpoint is not None:
        classifier.on_load_checkpoint(checkpoint)
        classifier.load_state_dict(checkpoint["state_dict"])
    return classifier
