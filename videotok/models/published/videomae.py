"""VideoMAE checkpoints: the original MCG-NJU/VideoMAE fine-tuned `.pth` and transformers'
VideoMAEForVideoClassification -> `videomae_*` (no CLS, the fixed sinusoidal table, mean pooling +
fc_norm). Their query and value biases become our `qkv` bias with a zero key part (exact: a key
bias never changes attention). Neither stores its position table nor, in the `.pth`, its frames or
image size: those come from config.json, the `.pth`'s saved training arguments, or the published
16 x 224.

Layer norm eps: the original uses 1e-6 everywhere; transformers' port uses its config's
`layer_norm_eps` (1e-12 on the hub) in the blocks and 1e-5 in fc_norm, reproduced as it is.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any, Optional

import torch
from torch import Tensor

from videotok.models.published.checkpoint import Preprocessing, PublishedCheckpoint
from videotok.models.published.common import (block_count, check_config, choose_model, class_names, fuse_qkv,
                                              hf_block_args, hf_labels, rename, square)
from videotok.models.published.files import Found
from videotok.models.published.preprocessing import from_processor
from videotok.models.videomae import sinusoid_table

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
SSV2_CLASSES = 174
HF_FC_NORM_EPS = 1e-5  # transformers' fc_norm is a default nn.LayerNorm

_LAYER = r"^videomae\.encoder\.layer\.(\d+)\."
HF_RENAMES = [
    (r"^videomae\.embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (_LAYER + r"attention\.attention\.query\.", r"blocks.\1.attn.q."),
    (_LAYER + r"attention\.attention\.key\.", r"blocks.\1.attn.k."),
    (_LAYER + r"attention\.attention\.value\.", r"blocks.\1.attn.v."),
    (_LAYER + r"attention\.attention\.q_bias$", r"blocks.\1.attn.q.bias"),  # transformers 4 names
    (_LAYER + r"attention\.attention\.v_bias$", r"blocks.\1.attn.v.bias"),
    (_LAYER + r"attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (_LAYER + r"layernorm_before\.", r"blocks.\1.norm1."),
    (_LAYER + r"layernorm_after\.", r"blocks.\1.norm2."),
    (_LAYER + r"intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (_LAYER + r"output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^fc_norm\.", "fc_norm."),
    (r"^classifier\.", "head."),
]
PTH_RENAMES = [
    (r"^patch_embed\.proj\.(weight|bias)$", r"patch_embed.proj.\1"),
    (r"^blocks\.(\d+)\.attn\.q_bias$", r"blocks.\1.attn.q.bias"),
    (r"^blocks\.(\d+)\.attn\.v_bias$", r"blocks.\1.attn.v.bias"),
    (r"^blocks\.(\d+)\.(attn\.qkv|attn\.proj|norm1|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)$", r"blocks.\1.\2.\3"),
    (r"^blocks\.(\d+)\.gamma_1$", r"blocks.\1.ls1.gamma"),  # layer scale, where trained with it
    (r"^blocks\.(\d+)\.gamma_2$", r"blocks.\1.ls2.gamma"),
    (r"^(fc_norm|head)\.(weight|bias)$", r"\1.\2"),
]
CLS_READOUT = "use_mean_pooling=False (a final layer norm and the first token as the readout) is not supported"


def looks_like_hf(found: Found) -> bool:
    return (found.config or {}).get("model_type") == "videomae" or any(k.startswith("videomae.") for k in found.state)


def looks_like_pth(found: Found) -> bool:
    return "blocks.0.attn.q_bias" in found.state or (
        "fc_norm.weight" in found.state and "cls_token" not in found.state
        and getattr(found.state.get("patch_embed.proj.weight"), "ndim", 0) == 5)


def geometry(state: dict[str, Tensor]) -> dict[str, int]:
    dim, _, tubelet, patch, _ = state["patch_embed.proj.weight"].shape  # [C, 3, kt, p, p]
    return dict(embed_dim=dim, depth=block_count(state), tubelet_size=tubelet, patch_size=patch,
                num_classes=state["head.weight"].shape[0])


def published_protocol(frames: int, img_size: int, num_classes: int, notes: list[str]) -> Preprocessing:
    """The fine-tuning scripts' test settings: K400 16 frames every 4th, short side 224, 5 clips x
    3 crops; SSv2 16 frames one per segment, 2 x 3 (sampling_rate does not reproduce segments)."""
    if num_classes == SSV2_CLASSES:
        notes.append("SSv2 protocol: 2x3 views, short side 224; SSv2 samples one frame per segment, "
                     "sampling_rate 2 only approximates it")
        return Preprocessing(frames, 2, img_size, img_size, *IMAGENET, (2, 3))
    notes.append("VideoMAE Kinetics protocol: sampling_rate 4, short side 224, ImageNet mean/std, 5x3 views")
    return Preprocessing(frames, 4, img_size, img_size, *IMAGENET, (5, 3))


def model_args(g: dict[str, int], frames: int, img_size: int, **options: Any) -> dict[str, Any]:
    return dict(num_classes=g["num_classes"], num_frames=frames, img_size=img_size, patch_size=g["patch_size"],
                tubelet_size=g["tubelet_size"], **options)


def convert_hf(found: Found, classes: Optional[list[str]], source: str) -> PublishedCheckpoint:
    where = str(found.path)
    config = found.config or {}
    if not config.get("use_mean_pooling", True) or "videomae.layernorm.weight" in found.state:
        raise ValueError(f"{where}: {CLS_READOUT}")
    state = fuse_qkv(rename(found.state, HF_RENAMES, where))
    g = geometry(state)
    frames = int(config.get("num_frames", 16))
    img_size = square(config.get("image_size", 224), "image_size", where)
    check_config(config, dict(g, num_frames=frames, img_size=img_size), where, patch="patch_size")
    if int(config.get("tubelet_size", g["tubelet_size"])) != g["tubelet_size"]:
        raise ValueError(f"{where}: config.json tubelet_size {config['tubelet_size']} does not fit the patch kernel")
    name, heads = choose_model("videomae", g["embed_dim"], g["depth"], config.get("num_attention_heads"), where,
                               g["patch_size"], img_size)
    notes = [] if found.config else ["no config.json: 16 frames at 224 px and transformers' defaults assumed"]
    preprocessing = published_protocol(frames, img_size, g["num_classes"], notes)
    if found.processor is not None:
        preprocessing, read = from_processor(found.processor, preprocessing, img_size, str(found.processor_file))
        notes += read
    args = model_args(g, frames, img_size, num_heads=heads, fc_norm_eps=HF_FC_NORM_EPS,
                      qkv_bias="blocks.0.attn.qkv.bias" in state,
                      **hf_block_args(config, g["embed_dim"], where, norm_eps=1e-12, act="gelu"))
    names = class_names(g["num_classes"], hf_labels(found.config, g["num_classes"]), classes, where)
    return PublishedCheckpoint(source, "hf_videomae", name, args, names, preprocessing, state, notes)


def training_args(found: Found) -> dict[str, Any]:
    """The argparse arguments a VideoMAE training run saved beside the weights, if any."""
    args = found.extras.get("args")
    if isinstance(args, argparse.Namespace):
        return vars(args)
    return args if isinstance(args, dict) else {}


def from_training_args(args: dict[str, Any], published: Preprocessing, notes: list[str]) -> Preprocessing:
    """The test settings among the saved training arguments (VideoMAE's argparse names)."""
    names = dict(sampling_rate="sampling_rate", short_side="short_side_size")
    values = {ours: int(args[theirs]) for ours, theirs in names.items() if theirs in args}
    if "test_num_segment" in args and "test_num_crop" in args:
        values["views"] = (int(args["test_num_segment"]), int(args["test_num_crop"]))
    if values:
        notes.append(f"{', '.join(sorted(values))} read from the saved training arguments")
    return replace(published, **values)


def drop_fixed_positions(state: dict[str, Tensor], where: str) -> dict[str, Tensor]:
    """A stored `pos_embed` is accepted only when it is the fixed sinusoidal table we rebuild."""
    table = state.pop("pos_embed", None)
    fixed = None if table is None else sinusoid_table(table.shape[1], table.shape[2])
    if table is not None and not torch.allclose(table.float(), fixed, atol=1e-5):
        raise ValueError(f"{where}: pos_embed is learned, not VideoMAE's fixed sinusoidal table; not supported")
    return state


def convert_pth(found: Found, classes: Optional[list[str]], source: str) -> PublishedCheckpoint:
    where = str(found.path)
    if "norm.weight" in found.state:
        raise ValueError(f"{where}: {CLS_READOUT}")
    state = fuse_qkv(rename(drop_fixed_positions(dict(found.state), where), PTH_RENAMES, where))
    g = geometry(state)
    args = training_args(found)
    frames, img_size = int(args.get("num_frames", 16)), int(args.get("input_size", 224))
    notes = [f"{frames} frames at {img_size} px: " + ("the saved training arguments" if args else
             "the published fine-tuning (the .pth stores neither; override num_frames / img_size in model_args "
             "if this one differs)")]
    name, heads = choose_model("videomae", g["embed_dim"], g["depth"], None, where, g["patch_size"], img_size)
    notes.append(f"{g['embed_dim']} dims, {g['depth']} blocks: {name} ({heads} heads); eps 1e-6 as the original")
    preprocessing = from_training_args(args, published_protocol(frames, img_size, g["num_classes"], notes), notes)
    layer_scale = any(k.endswith(".ls1.gamma") for k in state)
    options: dict[str, Any] = dict(num_heads=heads, norm_eps=1e-6, act_layer="gelu", qkv_bias="blocks.0.attn.qkv.bias" in state,
                                   mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / g["embed_dim"])
    if layer_scale:
        options["init_values"] = 0.1  # any non-zero value makes the LayerScale modules; the weights replace it
    names = class_names(g["num_classes"], None, classes, where, kinetics=True)
    return PublishedCheckpoint(source, "videomae_pth", name, model_args(g, frames, img_size, **options), names,
                               preprocessing, state, notes)
