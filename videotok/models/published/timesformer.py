"""TimeSformer checkpoints: the original facebookresearch/TimeSformer `.pyth` and transformers'
TimesformerForVideoClassification. Both become `timesformer_*` (VideoViT, divided attention), whose
names are the original's without its `model.` prefix; the per-frame Conv2d patch kernel becomes a
Conv3d of tubelet 1.

The original embeds patches per frame, adds `pos_embed` (CLS position first) then `time_embed` (not
to CLS), orders tokens patch-major where we go frame-major (attention does not care), and in each
block runs temporal attention -> `temporal_fc`, then spatial attention with CLS copied into every
frame and its outputs averaged: `Block._divided` computes exactly that.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

import yaml
from torch import Tensor

from videotok.models.published.checkpoint import Preprocessing, PublishedCheckpoint
from videotok.models.published.common import (block_count, check_config, choose_model, class_names, conv2d_to_3d,
                                              hf_block_args, hf_labels, rename)
from videotok.models.published.files import Found
from videotok.models.published.preprocessing import from_processor

MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)  # timesformer/config/defaults.py
# (frames, image size) -> sampling rate of the released Kinetics models: 8x32 at 224, HR 16x16 at
# 448, L 96x4 at 224 (configs/Kinetics/TimeSformer_divST_*.yaml); 1 clip x 3 crops, short side = crop
SAMPLING = {(8, 224): 32, (16, 448): 16, (96, 224): 4}
SSV2_CLASSES = 174

PYTH_RENAMES = [
    (r"^model\.(cls_token|pos_embed|time_embed)$", r"\1"),
    (r"^model\.patch_embed\.proj\.(weight|bias)$", r"patch_embed.proj.\1"),
    (r"^model\.blocks\.(\d+)\.((?:temporal_)?attn\.(?:qkv|proj)|norm1|norm2|temporal_norm1|temporal_fc"
     r"|mlp\.fc1|mlp\.fc2)\.(weight|bias)$", r"blocks.\1.\2.\3"),
    (r"^model\.(norm|head)\.(weight|bias)$", r"\1.\2"),
]

_LAYER = r"^timesformer\.encoder\.layer\.(\d+)\."
HF_RENAMES = [
    (r"^timesformer\.embeddings\.cls_token$", "cls_token"),
    (r"^timesformer\.embeddings\.position_embeddings$", "pos_embed"),
    (r"^timesformer\.embeddings\.time_embeddings$", "time_embed"),
    (r"^timesformer\.embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (_LAYER + r"attention\.attention\.qkv\.", r"blocks.\1.attn.qkv."),
    (_LAYER + r"attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (_LAYER + r"temporal_layernorm\.", r"blocks.\1.temporal_norm1."),
    (_LAYER + r"temporal_attention\.attention\.qkv\.", r"blocks.\1.temporal_attn.qkv."),
    (_LAYER + r"temporal_attention\.output\.dense\.", r"blocks.\1.temporal_attn.proj."),
    (_LAYER + r"temporal_dense\.", r"blocks.\1.temporal_fc."),
    (_LAYER + r"layernorm_before\.", r"blocks.\1.norm1."),
    (_LAYER + r"layernorm_after\.", r"blocks.\1.norm2."),
    (_LAYER + r"intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (_LAYER + r"output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^timesformer\.layernorm\.", "norm."),
    (r"^classifier\.", "head."),
]


def looks_like_pyth(found: Found) -> bool:
    return found.container == "model_state" or "model.time_embed" in found.state


def looks_like_hf(found: Found) -> bool:
    return (found.config or {}).get("model_type") == "timesformer" or "timesformer.embeddings.cls_token" in found.state


def geometry(state: dict[str, Tensor]) -> dict[str, int]:
    """Sizes read from our-named weights: width, depth, patch, frames, image size, classes."""
    dim = state["cls_token"].shape[-1]
    patch = state["patch_embed.proj.weight"].shape[-1]
    grid = round((state["pos_embed"].shape[1] - 1) ** 0.5)  # pos_embed [1, 1 + (img/patch)^2, C]
    return dict(embed_dim=dim, depth=block_count(state), patch_size=patch, num_frames=state["time_embed"].shape[1],
                img_size=grid * patch, num_classes=state["head.weight"].shape[0])


def published_protocol(frames: int, img_size: int, notes: list[str]) -> Preprocessing:
    rate = SAMPLING.get((frames, img_size))
    if rate is None:
        rate = 32 if frames <= 8 else max(1, 256 // frames)
        notes.append(f"no released TimeSformer is {frames}x{img_size}: sampling_rate {rate} assumed "
                     "(256 frames per clip)")
    else:
        notes.append(f"sampling_rate {rate}, views 1x3, short side = crop {img_size}, mean 0.45 std 0.225: "
                     "the released TimeSformer configs")
    return Preprocessing(frames, rate, img_size, img_size, MEAN, STD, (1, 3))


def training_cfg(found: Found) -> dict[str, Any]:
    """The training config a .pyth carries (`cfg`, a YAML dump of the run's settings), if any."""
    text = found.extras.get("cfg")
    try:
        cfg = yaml.safe_load(text) if isinstance(text, str) else None
    except yaml.YAMLError:
        cfg = None
    return cfg if isinstance(cfg, dict) else {}


def from_cfg(cfg: dict[str, Any], preprocessing: Preprocessing, notes: list[str]) -> Preprocessing:
    """The test settings the training config states."""
    data, test = cfg.get("DATA") or {}, cfg.get("TEST") or {}
    read: dict[str, Any] = {}
    if "SAMPLING_RATE" in data:
        read["sampling_rate"] = int(data["SAMPLING_RATE"])
    for ours, theirs in (("mean", "MEAN"), ("std", "STD")):
        if theirs in data:
            read[ours] = tuple(float(v) for v in data[theirs])
    if "NUM_ENSEMBLE_VIEWS" in test and "NUM_SPATIAL_CROPS" in test:
        read["views"] = (int(test["NUM_ENSEMBLE_VIEWS"]), int(test["NUM_SPATIAL_CROPS"]))
    if read:
        notes.append(f"{', '.join(sorted(read))} read from the checkpoint's own cfg")
    return replace(preprocessing, **read)


def is_ssv2(num_classes: int, cfg: dict[str, Any]) -> bool:
    dataset = str((cfg.get("TRAIN") or {}).get("DATASET", "")).lower()
    return dataset == "ssv2" or (not dataset and num_classes == SSV2_CLASSES)


def convert_pyth(found: Found, classes: Optional[list[str]], source: str) -> PublishedCheckpoint:
    where = str(found.path)
    state = rename(found.state, PYTH_RENAMES, where)
    if not any(".temporal_attn." in k for k in state):
        raise ValueError(f"{where}: no temporal attention weights; only divided space-time TimeSformers are supported")
    state["patch_embed.proj.weight"] = conv2d_to_3d(state["patch_embed.proj.weight"])
    g = geometry(state)
    name, heads = choose_model("timesformer", g["embed_dim"], g["depth"], found.num_heads, where, g["patch_size"],
                               g["img_size"], stated_by="num_heads")
    notes = [f"{g['embed_dim']} dims, {g['depth']} blocks: {name} ({heads} heads); eps 1e-6 and exact GELU "
             "as the original"]
    cfg = training_cfg(found)
    preprocessing = from_cfg(cfg, published_protocol(g["num_frames"], g["img_size"], notes), notes)
    if is_ssv2(g["num_classes"], cfg):
        # TimeSformer's SSv2 loader decodes JPEGs with OpenCV (BGR) and skips the channel reversal for
        # ViT, so these weights saw BGR: reversing the kernel's input channels lets them take RGB
        state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"].flip(1)
        notes.append("SSv2: trained on BGR frames; patch kernel channels reversed to take RGB. SSv2 samples one "
                     "frame per segment of the whole video; sampling_rate does not reproduce that")
    model_args = dict(num_classes=g["num_classes"], num_frames=g["num_frames"], img_size=g["img_size"],
                      patch_size=g["patch_size"], tubelet_size=1, num_heads=heads, norm_eps=1e-6, act_layer="gelu",
                      qkv_bias=True)
    names = class_names(g["num_classes"], None, classes, where, kinetics=True)
    return PublishedCheckpoint(source, "timesformer_pyth", name, model_args, names, preprocessing, state, notes)


def hf_config(found: Found, state: dict[str, Tensor], where: str) -> dict[str, Any]:
    """Sizes and options from config.json, or from the weights (transformers' defaults) without one."""
    cfg = found.config or {}
    g = geometry(state)
    if cfg.get("attention_type", "divided_space_time") != "divided_space_time":
        raise ValueError(f"{where}: attention_type {cfg['attention_type']!r}; only divided_space_time is supported")
    check_config(cfg, g, where, frames="num_frames", image="image_size", patch="patch_size")
    return dict(g, num_heads=found.num_heads or cfg.get("num_attention_heads"),
                qkv_bias=bool(cfg.get("qkv_bias", True)),
                **hf_block_args(cfg, g["embed_dim"], where, norm_eps=1e-6, act="gelu"))


def convert_hf(found: Found, classes: Optional[list[str]], source: str) -> PublishedCheckpoint:
    where = str(found.path)
    state = rename(found.state, HF_RENAMES, where)
    state["patch_embed.proj.weight"] = conv2d_to_3d(state["patch_embed.proj.weight"])
    c = hf_config(found, state, where)
    name, heads = choose_model("timesformer", c["embed_dim"], c["depth"], c["num_heads"], where,
                               c["patch_size"], c["img_size"])
    notes = [] if found.config else ["no config.json: sizes from the weights, transformers' defaults otherwise"]
    preprocessing = published_protocol(c["num_frames"], c["img_size"], notes)
    if found.processor is not None:
        preprocessing, read = from_processor(found.processor, preprocessing, c["img_size"], str(found.processor_file))
        notes += read
    model_args = dict(num_classes=c["num_classes"], num_frames=c["num_frames"], img_size=c["img_size"],
                      patch_size=c["patch_size"], tubelet_size=1, num_heads=heads, norm_eps=c["norm_eps"],
                      act_layer=c["act_layer"],
                      qkv_bias=c["qkv_bias"], mlp_ratio=c["mlp_ratio"])
    names = class_names(c["num_classes"], hf_labels(found.config, c["num_classes"]), classes, where)
    return PublishedCheckpoint(source, "hf_timesformer", name, model_args, names, preprocessing, state, notes)
