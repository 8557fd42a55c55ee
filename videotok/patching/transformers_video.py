"""transformers' video classifiers (TimesformerForVideoClassification, VivitForVideoClassification,
VideoMAEForVideoClassification) run by a videotok backbone made of their own parameters.

Which backbone, and which of its parameters each of theirs is, come from the published-checkpoint
conversions (videotok.models.published): the converter reads the model's config and its weights'
shapes (on the meta device, nothing copied) and names the backbone, the rename tables name the
parameters. `transformers` itself is only imported for the output class, when a model is patched.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videotok.models.base import VideoBackbone
from videotok.models.published import timesformer, videomae, vivit
from videotok.models.published.common import rename
from videotok.models.published.files import Found
from videotok.models.registry import create_model
from videotok.patching.host import ATTRIBUTE
from videotok.patching.share import materialise_buffers, share_parameters

# class name -> (the conversion of its saved weights, its rename table, keys the backbone does not use)
CLASSES: dict[str, tuple[Callable[..., Any], list[tuple[str, str]], list[str]]] = {
    "TimesformerForVideoClassification": (timesformer.convert_hf, timesformer.HF_RENAMES, []),
    "VivitForVideoClassification": (vivit.convert, vivit.RENAMES, vivit.IGNORED),
    "VideoMAEForVideoClassification": (videomae.convert_hf, videomae.HF_RENAMES, []),
}
# what a reduced forward cannot return: its token count changes from block to block
UNSUPPORTED = ("output_attentions", "output_hidden_states", "head_mask", "interpolate_pos_encoding")


def matches(model: nn.Module) -> bool:
    return type(model).__name__ in CLASSES and hasattr(model, "config")


def dropout_args(config: Any) -> dict[str, float]:
    """The config's dropout rates as videotok's model arguments (all zero in the published models)."""
    rates = dict(drop_rate=getattr(config, "hidden_dropout_prob", 0.0),
                 attn_drop_rate=getattr(config, "attention_probs_dropout_prob", 0.0),
                 drop_path_rate=getattr(config, "drop_path_rate", 0.0))
    return {k: float(v) for k, v in rates.items() if v}


def build_backbone(model: nn.Module) -> VideoBackbone:
    """videotok's backbone of `model`, its parameters `model`'s own Parameters, without a reducer."""
    kind = type(model).__name__
    convert, renames, ignored = CLASSES[kind]
    shapes = {k: torch.empty(v.shape, dtype=v.dtype, device="meta") for k, v in model.state_dict().items()}
    found = Found(path=Path(kind), state=shapes, config=model.config.to_dict())
    converted = convert(found, None, kind)
    with torch.device("meta"):
        backbone = create_model(converted.model, **converted.model_args, **dropout_args(model.config))
    share_parameters(backbone, rename(dict(model.named_parameters()), renames, kind, ignore=ignored), kind)
    materialise_buffers(backbone, next(model.parameters()).device)
    return backbone


def make_forward(model: nn.Module) -> Callable[..., Any]:
    """The host's forward through its backbone: the same signature (for Trainer and pipelines,
    which read it), `pixel_values` [B, T, C, H, W] as transformers takes them, and the same output:
    an ImageClassifierOutput with the loss when `labels` are given, or its tuple with return_dict=False."""
    from transformers.modeling_outputs import ImageClassifierOutput

    original = type(model).forward

    @functools.wraps(original)
    def forward(self: nn.Module, pixel_values: Optional[Tensor] = None, labels: Optional[Tensor] = None,
                *args: Any, return_dict: Optional[bool] = None, **kwargs: Any) -> Any:
        if args:
            raise TypeError(f"a patched {type(self).__name__} takes pixel_values and labels by position, the rest "
                            "by keyword")
        asked = [name for name in UNSUPPORTED if kwargs.pop(name, None)]
        if asked:
            raise ValueError(f"{', '.join(asked)}: not available from a token-reduced {type(self).__name__} (the "
                             "token count changes between blocks); videotok.unpatch(model) first")
        if pixel_values is None:
            raise ValueError("pixel_values [B, T, C, H, W] is required")
        logits = getattr(self, ATTRIBUTE)(pixel_values.transpose(1, 2))  # [B, T, C, H, W] -> [B, C, T, H, W]
        loss = None if labels is None else classification_loss(self, logits, labels, kwargs)
        output = ImageClassifierOutput(loss=loss, logits=logits)
        if return_dict is None:
            return_dict = getattr(self.config, "return_dict", True)
        return output if return_dict else output.to_tuple()

    return forward


def classification_loss(model: nn.Module, logits: Tensor, labels: Tensor, kwargs: dict[str, Any]) -> Tensor:
    """The loss the original forward computes: transformers' own loss function where the model has
    one (it honours `num_items_in_batch` under gradient accumulation), else the problem_type rules
    every transformers classifier follows."""
    loss_function = getattr(model, "loss_function", None)
    if loss_function is not None:
        return loss_function(labels, logits, model.config, **kwargs)
    config, classes = model.config, logits.shape[-1]
    if config.problem_type is None:
        integer = labels.dtype in (torch.long, torch.int)
        config.problem_type = ("regression" if classes == 1 else
                               "single_label_classification" if integer else "multi_label_classification")
    if config.problem_type == "regression":
        return F.mse_loss(logits.squeeze(), labels.squeeze()) if classes == 1 else F.mse_loss(logits, labels)
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, classes), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels)
