"""`videotok.evaluate(model, data_dir)`: one model on a Kinetics-layout folder, from Python.

The data module is made from the model's own preprocessing where it carries one (a model from
`videotok.load`), so a Python evaluation decodes what `videotok evaluate --pretrained` decodes; the
pass is `videotok.evaluate.runner.evaluate`'s, the result the same EvaluationResult.
"""
from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import nn

from videotok.evaluate.engine import find_backbone
from videotok.evaluate.result import EvaluationResult
from videotok.evaluate.runner import evaluate
from videotok.patching.host import backbone_of, is_patched


def evaluate_folder(model: nn.Module, data_dir: str, views: Optional[tuple[int, int]] = None, split: str = "test", *,
                    aggregate: str = "softmax", device: Union[str, torch.device] = "cpu", precision: str = "32",
                    batch_size: int = 8, num_workers: int = 0, progress: bool = False,
                    **data_args: Any) -> EvaluationResult:
    """Accuracy, GFLOPs per view and clips/s of `model` (a backbone, a patched transformers/timm model,
    or a module holding a backbone as `.model`) on `split` of `data_dir`. Clips are decoded with
    `model.preprocessing` where it has one, else at the backbone's frames and size, `data_args`
    (KineticsDataModule's options) overriding; views default to the preprocessing's, else the
    family's paper protocol."""
    from videotok.data import KineticsDataModule

    backbone = backbone_of(model) if is_patched(model) else find_backbone(model)
    preprocessing = getattr(model, "preprocessing", None) or getattr(backbone, "preprocessing", None)
    defaults = preprocessing.data_args() if preprocessing is not None else dict(
        num_frames=backbone.num_frames, crop_size=backbone.img_size, eval_short_side=backbone.img_size)
    if views is None and preprocessing is not None:
        views = tuple(preprocessing.views)
    datamodule = KineticsDataModule(str(data_dir), **{**defaults, "batch_size": batch_size,
                                                      "num_workers": num_workers, **data_args})
    return evaluate(backbone, datamodule, split=split, views=views, aggregate=aggregate, device=device,
                    progress=progress, precision=precision)
