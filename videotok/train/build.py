"""Build the data module and classifier a config describes, outside LightningCLI (for `evaluate`
and `compare`), with the same links: the data decides frames, crop size and classes
(videotok/settings.py)."""
from __future__ import annotations

from typing import Any, Optional

from videotok.data import KineticsDataModule
from videotok.data.labels import check_class_order
from videotok.reduce.choice import ReducerChoice
from videotok.settings import data_options, published_checkpoint, resolve_model_settings
from videotok.train.module import CLASSES_KEY, VideoClassifier

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


def restrict_published(config: dict, datamodule: KineticsDataModule, checkpoint: Optional[dict] = None,
                       new_head: bool = False) -> dict:
    """`config` with `model.published_keep` set to the data's classes where `model.published`, scored
    with its own head, has more classes than the data and every one of the data's by name (K710 or
    K600 on Kinetics-400): it is then evaluated on the data's classes, its other logits left out.
    Unchanged otherwise (a head trained here, or classes that do not match: `check_classes` says why)."""
    published = published_checkpoint(config)
    if (published is None or checkpoint is not None or new_head or published.class_restriction
            or len(published.classes) <= datamodule.num_classes or not published.has_class_names):
        return config
    from videotok.models.published.classes import match_classes

    if match_classes(published.classes, datamodule.classes) is None:
        return config
    return {**config, "model": {**(config.get("model") or {}), "published_keep": list(datamodule.classes)}}


def published_restriction(config: dict, datamodule: KineticsDataModule) -> Optional[str]:
    """What evaluating `model.published` on the data's classes leaves out (None: nothing), as said in
    results and reports."""
    published = published_checkpoint(restrict_published(config, datamodule))
    return None if published is None else published.class_restriction


def check_classes(config: dict, datamodule: KineticsDataModule, checkpoint: Optional[dict], new_head: bool) -> None:
    """The data's classes must be the model's: those a checkpoint was trained on (where it says),
    else, where the head is `model.published`'s, the published checkpoint's (with names: in its
    order). A head of its own (trained, or to be trained with `new_head`) is the data's."""
    data_source = str(datamodule.data_dir / "classes.txt")
    trained = (checkpoint or {}).get(CLASSES_KEY)
    if trained is not None:
        check_class_order(datamodule.classes, data_source, list(trained), "the checkpoint's run")
        return
    published = published_checkpoint(config)
    if published is None:
        return
    head = (checkpoint or {}).get("state_dict", {}).get("model.head.weight")
    own_head = (head is not None and head.shape[0] != len(published.classes)) or new_head
    if own_head and datamodule.num_classes != len(published.classes):
        return
    if datamodule.num_classes != len(published.classes):
        if not published.has_class_names:
            why = ("it carries no class names, so none of its classes can be matched to the data's: give them "
                   "(--classes FILE, model.published_classes) to score it on the data's classes by name")
        else:
            from videotok.models.published.classes import missing_classes

            missing = missing_classes(published.classes, datamodule.classes)
            why = (f"evaluating it measures its own head, so the data must have its classes or a subset of them "
                   f"(by name); {len(missing)} are not among its own, e.g. {missing[:5]}")
        raise ValueError(f"{data_source} lists {datamodule.num_classes} classes, the published checkpoint "
                         f"{published.source} has {len(published.classes)}: {why}. To fine-tune it on your classes "
                         "(a new head), run `videotok fit --config C --model.published SOURCE` and evaluate that run")
    if published.has_class_names:  # else the data's names are taken as its
        check_class_order(datamodule.classes, data_source, published.classes,
                          f"the published checkpoint {published.source}", fix=CLASS_ORDER_FIX)


def build_classifier(
    config: dict,
    datamodule: KineticsDataModule,
    reducer: Optional[ReducerChoice] = None,
    checkpoint: Optional[dict] = None,
    new_head: bool = False,
    **overrides: Any,
) -> VideoClassifier:
    """The config's classifier; `reducer` replaces its reducer (and arguments). With a
    `checkpoint` and no `reducer`, the reducer it was trained with is used, then its weights.
    `new_head`: it will be trained, so a `model.published` of other classes than the data's gets
    a new head for them; evaluated, one of more classes than the data's is scored on the data's
    where they are among its own by name (`restrict_published`), else refused. `overrides`: other
    VideoClassifier options (fine-tuning's optimisation, `init_checkpoint`)."""
    if reducer is None and checkpoint is not None:
        reducer = trained_reducer(checkpoint)
    config = restrict_published(config, datamodule, checkpoint, new_head)
    settings = resolve_model_settings(config, reducer, num_classes=datamodule.num_classes)
    check_classes(config, datamodule, checkpoint, new_head)
    options = {**(config.get("model") or {}), **settings.classifier_args(), **overrides}
    if checkpoint is not None:
        options.pop("init_checkpoint", None)
    classifier = VideoClassifier(**options)
    if checkpoint is not None:
        classifier.on_load_checkpoint(checkpoint)
        classifier.load_state_dict(checkpoint["state_dict"])
    return classifier
