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
import re
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
    (r"^videomae\.layernorm\.", "norm."),  # use_mean_pooling=False: the final norm, the first token read out
    (r"^classifier\.", "head."),
]
PTH_RENAMES = [
    (r"^patch_embed\.proj\.(weight|bias)$", r"patch_embed.proj.\1"),
    (r"^blocks\.(\d+)\.attn\.q_bias$", r"blocks.\1.attn.q.bias"),
    (r"^blocks\.(\d+)\.attn\.v_bias$", r"blocks.\1.attn.v.bias"),
    (r"^blocks\.(\d+)\.(attn\.qkv|attn\.proj|norm1|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)$", r"blocks.\1.\2.\3"),
    (r"^blocks\.(\d+)\.gamma_1$", r"blocks.\1.ls1.gamma"),  # layer scale, where trained with it
    (r"^blocks\.(\d+)\.gamma_2$", r"blocks.\1.ls2.gamma"),
    (r"^blocks\.(\d+)\.attn\.scale$", r"blocks.\1.attn.logit_scale"),  # V2's cos_attn
    (r"^(fc_norm|norm|head)\.(weight|bias)$", r"\1.\2"),  # norm: use_mean_pooling=False
]
# the sizes the VideoMAE (V1 and V2) authors register in models/modeling_finetune.py, as their saved
# `args.model` names them (vit_<size>_patch<p>_<img>): size -> (width, heads). ViT-H and ViT-g do not
# have 64 dims per head (80 and 88), so width / 64 would build them wrong.
AUTHORS_SIZES = {"small": (384, 6), "base": (768, 12), "large": (1024, 16), "huge": (1280, 16), "giant": (1408, 16)}
AUTHORS_NAME = re.compile(r"^vit_(?P<size>[a-z]+)_patch(?P<patch>\d+)_(?P<img>\d+)$")


def looks_like_hf(found: Found) -> bool:
    """transformers' keys, or its config.json beside weights that are not the original's (a config
    may sit beside an original .pth to state its heads)."""
    if any(k.startswith("videomae.") for k in found.state):
        return True
    return (found.config or {}).get("model_type") == "videomae" and not looks_like_pth(found)


def looks_like_pth(found: Found) -> bool:
    return "blocks.0.attn.q_bias" in found.state or (
        ("fc_norm.weight" in found.state or "norm.weight" in found.state) and "cls_token" not in found.state
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
    state = fuse_qkv(rename(found.state, HF_RENAMES, where))
    mean_pooling = readout(state, where)
    if mean_pooling != bool(config.get("use_mean_pooling", True)):
        raise ValueError(f"{where}: config.json says use_mean_pooling={config['use_mean_pooling']}, "
                         f"the weights {'have fc_norm' if mean_pooling else 'have a final layernorm'}")
    g = geometry(state)
    frames = int(config.get("num_frames", 16))
    img_size = square(config.get("image_size", 224), "image_size", where)
    check_config(config, dict(g, num_frames=frames, img_size=img_size), where, patch="patch_size")
    if int(config.get("tubelet_size", g["tubelet_size"])) != g["tubelet_size"]:
        raise ValueError(f"{where}: config.json tubelet_size {config['tubelet_size']} does not fit the patch kernel")
    name, heads = choose_model("videomae", g["embed_dim"], g["depth"],
                               found.num_heads or config.get("num_attention_heads"), where, g["patch_size"], img_size,
                               stated_by="num_heads" if found.num_heads else "config.json")
    notes = [] if found.config else ["no config.json: 16 frames at 224 px and transformers' defaults assumed"]
    preprocessing = published_protocol(frames, img_size, g["num_classes"], notes)
    if found.processor is not None:
        preprocessing, read = from_processor(found.processor, preprocessing, img_size, str(found.processor_file))
        notes += read
    pooling = dict(fc_norm_eps=HF_FC_NORM_EPS) if mean_pooling else dict(mean_pooling=False)
    args = model_args(g, frames, img_size, num_heads=heads, **pooling, qkv_bias="blocks.0.attn.qkv.bias" in state,
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


def readout(state: dict[str, Tensor], where: str) -> bool:
    """True for mean pooling (fc_norm), False for the authors' use_mean_pooling=False (a final norm,
    the first token read out), from which of the two the weights hold."""
    if ("fc_norm.weight" in state) == ("norm.weight" in state):
        raise ValueError(f"{where}: {'both' if 'fc_norm.weight' in state else 'neither'} fc_norm and a final norm: "
                         "cannot tell how it reads out (mean pooling has fc_norm, use_mean_pooling=False a final norm)")
    return "fc_norm.weight" in state


def heads_stated(found: Found, args: dict[str, Any], embed_dim: int, where: str) -> tuple[Optional[int], str]:
    """(attention heads, what says so) of an authors' `.pth`: the user's count, else the saved
    `args.model` name, else a config.json beside the file, else the width of a size the authors
    register; (None, ...) when nothing says (choose_model then guesses, with a warning)."""
    if found.num_heads:
        return found.num_heads, "num_heads"
    named = AUTHORS_NAME.match(str(args.get("model", "")))
    if named and named["size"] in AUTHORS_SIZES:
        width, heads = AUTHORS_SIZES[named["size"]]
        if width != embed_dim:
            raise ValueError(f"{where}: the saved args.model {args['model']!r} is {width} wide, the weights "
                             f"{embed_dim}: the arguments belong to another model")
        return heads, f"the saved args.model {args['model']!r}"
    config = found.config or {}
    for key in ("num_attention_heads", "num_heads"):
        if key in config:
            return int(config[key]), f"config.json's {key}"
    known = {width: heads for width, heads in AUTHORS_SIZES.values()}
    if embed_dim in known:
        return known[embed_dim], f"the VideoMAE authors' {embed_dim}-wide models"
    return None, "nothing"


def convert_pth(found: Found, classes: Optional[list[str]], source: str) -> PublishedCheckpoint:
    where = str(found.path)
    state = fuse_qkv(rename(drop_fixed_positions(dict(found.state), where), PTH_RENAMES, where))
    mean_pooling = readout(state, where)
    g = geometry(state)
    args = training_args(found)
    frames, img_size = int(args.get("num_frames", 16)), int(args.get("input_size", 224))
    notes = [f"{frames} frames at {img_size} px: " + ("the saved training arguments" if args else
             "the published fine-tuning (the .pth stores neither; override num_frames / img_size in model_args "
             "if this one differs)")]
    stated, stated_by = heads_stated(found, args, g["embed_dim"], where)
    name, heads = choose_model("videomae", g["embed_dim"], g["depth"], stated, where, g["patch_size"], img_size,
                               stated_by=stated_by)
    notes.append(f"{g['embed_dim']} dims, {g['depth']} blocks: {name} ({heads} heads, from {stated_by}"
                 f"{'' if stated else ': GUESSED'}); eps 1e-6 as the original")
    preprocessing = from_training_args(args, published_protocol(frames, img_size, g["num_classes"], notes), notes)
    layer_scale = any(k.endswith(".ls1.gamma") for k in state)
    options: dict[str, Any] = dict(num_heads=heads, norm_eps=1e-6, act_layer="gelu",
                                   qkv_bias="blocks.0.attn.qkv.bias" in state,
                                   mlp_ratio=state["blocks.0.mlp.fc1.weight"].shape[0] / g["embed_dim"])
    if layer_scale:
        options["init_values"] = 0.1  # any non-zero value makes the LayerScale modules; the weights replace it
    if any(k.endswith(".attn.logit_scale") for k in state):
        options["cos_attn"] = True
        notes.append("cos_attn: cosine attention with its learned per-head scale")
    if not mean_pooling:
        options["mean_pooling"] = False
        notes.append("use_mean_pooling=False: the final norm, then the first token read out")
    names = class_names(g["num_classes"], None, classes, where, kinetics=True)
    return PublishedCheckpoint(source, "videomae_pth", name, model_args(g, frames, img_size, **options), names,
                               preprocessing, state, notes)
