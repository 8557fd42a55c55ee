"""transformers' VivitForVideoClassification (google/vivit-b-16x2-kinetics400: ViViT model 1, joint
attention over 2 x 16 x 16 tubelets, 32 frames) -> `vivit_*` (VideoViT, attention="joint") with one
joint position table (positions="joint") and tanh GELU (`gelu_fast`). Separate q/k/v become our
fused `qkv`. Both key layouts load: transformers 5's (`vivit.layers.N.attention.q_proj`, `mlp.fc1`)
and the older one hub files were saved with (`vivit.encoder.layer.N.attention.attention.query`,
`intermediate.dense`, `output.dense`).
"""
from __future__ import annotations

from typing import Any, Optional

from torch import Tensor

from videotok.models.published.checkpoint import Preprocessing, PublishedCheckpoint
from videotok.models.published.common import (block_count, check_config, choose_model, class_names, fuse_qkv,
                                              hf_block_args, hf_labels, log, rename, square)
from videotok.models.published.files import Found
from videotok.models.published.preprocessing import equivalent_normalisation, from_processor, offsets

# Scenic's vivit_base_k400: 32 frames at stride 2, short side 256, 4 clips x 3 crops, pixels in
# [-1, 1] (zero_centering, no mean/std): mean 0.5, std 0.5 after /255
PUBLISHED = dict(sampling_rate=2, short_side=256, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), views=(4, 3))

_NEW = r"^vivit\.layers\.(\d+)\."
_OLD = r"^vivit\.encoder\.layer\.(\d+)\."
RENAMES = [
    (r"^vivit\.embeddings\.cls_token$", "cls_token"),
    (r"^vivit\.embeddings\.position_embeddings$", "pos_embed"),
    (r"^vivit\.embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (_NEW + r"attention\.q_proj\.", r"blocks.\1.attn.q."),
    (_NEW + r"attention\.k_proj\.", r"blocks.\1.attn.k."),
    (_NEW + r"attention\.v_proj\.", r"blocks.\1.attn.v."),
    (_NEW + r"attention\.o_proj\.", r"blocks.\1.attn.proj."),
    (_NEW + r"mlp\.fc1\.", r"blocks.\1.mlp.fc1."),
    (_NEW + r"mlp\.fc2\.", r"blocks.\1.mlp.fc2."),
    (_OLD + r"attention\.attention\.query\.", r"blocks.\1.attn.q."),
    (_OLD + r"attention\.attention\.key\.", r"blocks.\1.attn.k."),
    (_OLD + r"attention\.attention\.value\.", r"blocks.\1.attn.v."),
    (_OLD + r"attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (_OLD + r"intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (_OLD + r"output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^vivit\.(?:layers|encoder\.layer)\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
    (r"^vivit\.(?:layers|encoder\.layer)\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
    (r"^vivit\.layernorm\.", "norm."),
    (r"^classifier\.", "head."),
]
IGNORED = [r"^vivit\.pooler\."]  # VivitModel's tanh pooler: the classifier reads the CLS token, not it


def looks_like(found: Found) -> bool:
    return (found.config or {}).get("model_type") == "vivit" or "vivit.embeddings.cls_token" in found.state


def geometry(state: dict[str, Tensor], config: dict[str, Any], where: str) -> dict[str, int]:
    """Sizes from the weights; frames (not in any weight shape but the position table's length)
    from config.json, checked against that table."""
    dim, _, tubelet, patch, _ = state["patch_embed.proj.weight"].shape  # [C, 3, kt, p, p]
    tokens = state["pos_embed"].shape[1] - 1  # T' * H' * W'
    img_size = square(config.get("image_size", 224), "image_size", where)
    frames = int(config.get("num_frames", 32))
    if (frames // tubelet) * (img_size // patch) ** 2 != tokens:
        raise ValueError(f"{where}: {tokens} position embeddings do not fit {frames} frames of {img_size} px "
                         f"in {tubelet}x{patch}x{patch} tubelets; check num_frames and image_size in config.json")
    return dict(embed_dim=dim, depth=block_count(state), tubelet_size=tubelet, patch_size=patch, num_frames=frames,
                img_size=img_size, num_classes=state["head.weight"].shape[0])


def preprocessing_for(found: Found, frames: int, img_size: int, notes: list[str]) -> Preprocessing:
    """The processor config's, unless it normalises twice.

    transformers' VivitImageProcessor by default rescales to [-1, 1] (`offset`) and then normalises
    by mean 0.5, std 0.5 again, giving [-3, 1]; the hub's google/vivit-b-16x2-kinetics400 config
    does that too, while the weights were trained on [-1, 1] (its converter checked its logits that
    way). Such a config is a defect, not what the authors fed: the published protocol is used."""
    published = Preprocessing(frames, PUBLISHED["sampling_rate"], PUBLISHED["short_side"], img_size,
                              PUBLISHED["mean"], PUBLISHED["std"], PUBLISHED["views"])
    cfg = found.processor
    if cfg is None:
        notes.append("no processor config: Scenic's ViViT protocol (stride 2, short side 256, [-1, 1], 4x3 views)")
        return published
    mean, std = equivalent_normalisation(cfg, str(found.processor_file))
    unit_range = (mean, std) == (PUBLISHED["mean"], PUBLISHED["std"])
    if offsets(cfg) and cfg.get("do_normalize", True) and not unit_range:
        low, high = -mean[0] / std[0], (1 - mean[0]) / std[0]
        message = (f"{found.processor_file} rescales to [-1, 1] and normalises again, mapping pixels to "
                   f"[{low:.3g}, {high:.3g}]; ViViT was trained on [-1, 1]: using Scenic's protocol instead "
                   f"(short side 256, mean 0.5, std 0.5)")
        log.warning(message)
        notes.append(message)
        return published
    preprocessing, read = from_processor(cfg, published, img_size, str(found.processor_file))
    notes += read
    return preprocessing


def convert(found: Found, classes: Optional[list[str]], source: str) -> PublishedCheckpoint:
    where = str(found.path)
    config = found.config or {}
    state = fuse_qkv(rename(found.state, RENAMES, where, ignore=IGNORED))
    g = geometry(state, config, where)
    check_config(config, g, where)  # frames and image size were checked against the position table
    tubelet = config.get("tubelet_size")
    if tubelet is not None and [int(v) for v in tubelet] != [g["tubelet_size"], g["patch_size"], g["patch_size"]]:
        raise ValueError(f"{where}: config.json tubelet_size {tubelet} does not fit the patch kernel")
    heads = found.num_heads or config.get("num_attention_heads")
    name, heads = choose_model("vivit", g["embed_dim"], g["depth"], heads, where, g["patch_size"], g["img_size"])
    notes = [] if found.config else ["no config.json: 32 frames at 224 px and transformers' defaults assumed"]
    preprocessing = preprocessing_for(found, g["num_frames"], g["img_size"], notes)
    model_args = dict(num_classes=g["num_classes"], num_frames=g["num_frames"], img_size=g["img_size"],
                      patch_size=g["patch_size"], tubelet_size=g["tubelet_size"], num_heads=heads, attention="joint",
                      positions="joint", qkv_bias=bool(config.get("qkv_bias", True)),
                      **hf_block_args(config, g["embed_dim"], where, norm_eps=1e-6, act="gelu_fast"))
    names = class_names(g["num_classes"], hf_labels(found.config, g["num_classes"]), classes, where)
    return PublishedCheckpoint(source, "hf_vivit", name, model_args, names, preprocessing, state, notes)
