"""What every family's conversion shares: renaming keys by anchored patterns (nothing left unnamed),
fusing separate q/k/v projections into our `qkv`, choosing the registered model of a width, and
class names."""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Optional

import torch
from torch import Tensor

from videotok.models.registry import list_models, model_spec, sized_name

log = logging.getLogger("videotok.models.published")

Renames = Sequence[tuple[str, str]]  # (anchored regex on the stored key, replacement)

# registered name prefixes of each family (ViViT's factorised encoder has no published checkpoint)
FAMILIES = {"timesformer": ("timesformer_",), "vivit": ("vivit_",), "videomae": ("videomae_",)}
NOT_IN_FAMILY = ("vivit_fe_",)
HEAD_DIM = 64  # ViT's width per attention head, where no config states the heads


def rename(state: dict[str, Tensor], renames: Renames, where: str, ignore: Sequence[str] = ()) -> dict[str, Tensor]:
    """Each key through the first pattern that matches it; keys matching `ignore` (regexes) are
    dropped. A key no pattern knows is an error naming it: a silently dropped weight would make a
    model that loads but is wrong."""
    compiled = [(re.compile(p), r) for p, r in renames]
    skipped = [re.compile(p) for p in ignore]
    out: dict[str, Tensor] = {}
    unknown: list[str] = []
    for key, value in state.items():
        if any(p.match(key) for p in skipped):
            continue
        for pattern, replacement in compiled:
            if pattern.match(key):
                target = pattern.sub(replacement, key, count=1)
                if target in out:
                    raise ValueError(f"{where}: two keys become {target} (old and new names mixed?), one is {key}")
                out[target] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"{where}: keys this format does not know: {', '.join(sorted(unknown)[:8])}"
                         f"{' ...' if len(unknown) > 8 else ''}")
    return out


def fuse_qkv(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """`<attn>.{q,k,v}.{weight,bias}` -> `<attn>.qkv.{weight,bias}` (rows q, k, v), also where only
    the q and v biases exist beside a fused weight (VideoMAE). A missing k bias is zero: it adds the
    same amount to every logit of a query, so attention never depended on it."""
    out = dict(state)
    prefixes = {k.rsplit(".", 2)[0] for k in state if re.search(r"\.[qkv]\.(weight|bias)$", k)}
    for prefix in sorted(prefixes):
        parts = {name: out.pop(f"{prefix}.{name}", None) for name in
                 ("q.weight", "k.weight", "v.weight", "q.bias", "k.bias", "v.bias")}
        weights = [parts["q.weight"], parts["k.weight"], parts["v.weight"]]
        if all(w is not None for w in weights):
            out[f"{prefix}.qkv.weight"] = torch.cat(weights, dim=0)  # 3 x [C, C] -> [3C, C]
        elif any(w is not None for w in weights):
            raise ValueError(f"{prefix}: some of the q/k/v weights are missing")
        biases = [parts["q.bias"], parts["k.bias"], parts["v.bias"]]
        if any(b is not None for b in biases):
            like = next(b for b in biases if b is not None)
            out[f"{prefix}.qkv.bias"] = torch.cat([torch.zeros_like(like) if b is None else b for b in biases])
    return out


def family_models(family: str) -> dict[str, tuple[int, int, int]]:
    """Registered names of `family` -> (embed_dim, depth, num_heads), read without making weights."""
    names = tuple(n for n in list_models() if n.startswith(FAMILIES[family]) and not n.startswith(NOT_IN_FAMILY))
    return {name: _width(name) for name in names}


@lru_cache(maxsize=None)
def _width(name: str) -> tuple[int, int, int]:
    """(embed_dim, depth, num_heads) of a registered model (built once on the meta device)."""
    spec = model_spec(name)
    return spec.dim, spec.depth, spec.num_heads


def choose_model(family: str, embed_dim: int, depth: int, num_heads: Optional[int], where: str,
                 patch_size: int = 16, img_size: int = 224, stated_by: str = "config.json") -> tuple[str, int]:
    """(model name, heads to build it with) for the checkpoint's width and depth. Heads are the
    stated ones where something states them (`stated_by`: config.json, the saved model name, the
    user); they do not show in the weights: transformers' converter wrote 16 for VideoMAE ViT-S,
    whose original has 6, and its models run with what the config says, so a differing count is
    kept and said. With nothing stated the registered model decides.

    A width and depth no registered name has (VideoMAE V2 ViT-g, a distilled or depth-pruned model)
    is built from the sizes the checkpoint states, under the sized name stating them; with nothing
    stating its heads they are guessed as ViT's 64 dims per head, with a warning."""
    widths = family_models(family)
    for name, (dim, blocks, heads) in sorted(widths.items()):
        if dim == embed_dim and blocks == depth:
            if num_heads is not None and num_heads != heads:
                log.warning("%s: %s says %d attention heads, %s has %d (the original models' count); "
                            "built with %d, as the checkpoint's own implementation runs it", where, stated_by,
                            num_heads, name, heads, num_heads)
            return name, heads if num_heads is None else num_heads
    if num_heads is None:
        num_heads = guess_heads(embed_dim, where)
    if embed_dim % num_heads:
        raise ValueError(f"{where}: {embed_dim} dims do not split into {num_heads} attention heads ({stated_by})")
    name = sized_name(family, embed_dim, depth, num_heads, patch_size, img_size)
    log.info("%s: %d dims, %d blocks, %d heads match no registered %s model; built from the checkpoint's sizes "
             "as %s", where, embed_dim, depth, num_heads, family, name)
    return name, num_heads


def guess_heads(embed_dim: int, where: str) -> int:
    """ViT's 64 dims per head, for a checkpoint nothing states the heads of: a warning, because a
    wrong count still fits every weight shape and silently gives other logits."""
    if embed_dim % HEAD_DIM:
        raise ValueError(f"{where}: {embed_dim} dims and nothing states its attention heads ({embed_dim} is no "
                         f"multiple of {HEAD_DIM}); give them: num_heads (--num-heads, model.num_heads) or a "
                         "config.json with num_attention_heads beside the weights")
    heads = embed_dim // HEAD_DIM
    log.warning("%s: nothing states its attention heads; GUESSED %d (%d dims per head, as ViT). A wrong count "
                "loads without error but gives other logits: give the count (--num-heads N, model.num_heads, or "
                "num_attention_heads in a config.json beside the weights)", where, heads, HEAD_DIM)
    return heads


def kinetics400_classes() -> list[str]:
    """The Kinetics-400 class names in label order (alphabetical, as the published Kinetics
    checkpoints number them), from torchvision's metadata: nothing is downloaded."""
    from torchvision.models.video import R3D_18_Weights

    return list(R3D_18_Weights.KINETICS400_V1.meta["categories"])


def class_names(num_classes: int, stored: Optional[list[str]], given: Optional[list[str]], where: str,
                kinetics: bool = False) -> list[str]:
    """The checkpoint's class order: a given class file wins, then names stored in the checkpoint,
    then (`kinetics`: original Kinetics checkpoints carry no names) Kinetics-400's for 400 classes,
    else "class i" with a warning."""
    if given is not None:
        if len(given) != num_classes:
            raise ValueError(f"{where}: the class file lists {len(given)} classes, the checkpoint has {num_classes}")
        return list(given)
    if stored is not None:
        return list(stored)
    if kinetics and num_classes == 400:
        return kinetics400_classes()
    log.warning("%s: %d classes without names; pass a class file (one name per line) to name them",
                where, num_classes)
    return [f"class {i}" for i in range(num_classes)]


def conv2d_to_3d(weight: Tensor) -> Tensor:
    """A per-frame patch kernel [C, 3, p, p] -> our Conv3d's [C, 3, 1, p, p] (tubelet 1)."""
    return weight.unsqueeze(2) if weight.ndim == 4 else weight


# transformers' activation names -> ours: exact GELU, or its tanh approximation
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_fast": "gelu_tanh", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}


def hf_block_args(config: dict[str, Any], embed_dim: int, where: str, norm_eps: float, act: str) -> dict[str, Any]:
    """The block options a transformers config.json states (`norm_eps`, `act`: that family's config
    defaults): act_layer, norm_eps and mlp_ratio."""
    name = config.get("hidden_act", act)
    if name not in HF_ACTIVATIONS:
        raise ValueError(f"{where}: hidden_act {name!r} is not supported (known: {', '.join(HF_ACTIVATIONS)})")
    return dict(act_layer=HF_ACTIVATIONS[name], norm_eps=float(config.get("layer_norm_eps", norm_eps)),
                mlp_ratio=config.get("intermediate_size", 4 * embed_dim) / embed_dim)


def block_count(state: dict[str, Tensor]) -> int:
    """Depth of a model from our-named weights (`blocks.N.*`)."""
    return 1 + max(int(re.match(r"blocks\.(\d+)\.", k)[1]) for k in state if k.startswith("blocks."))


def square(value: Any, what: str, where: str) -> int:
    """A config size given as an int or a square [h, w] (the last two entries of a tubelet size)."""
    if isinstance(value, (list, tuple)):
        if len(set(int(v) for v in value)) != 1:
            raise ValueError(f"{where}: {what} {list(value)} is not square; only square inputs are supported")
        value = value[0]
    return int(value)


def check_config(config: dict[str, Any], sizes: dict[str, int], where: str, **keys: str) -> None:
    """Refuse a config.json that contradicts the weights: `keys` maps our size names (frames, image,
    patch) to the config's; width and depth are always checked."""
    pairs = {"embed_dim": "hidden_size", "depth": "num_hidden_layers"}
    ours = {"frames": "num_frames", "image": "img_size", "patch": "patch_size"}
    pairs.update({ours[k]: v for k, v in keys.items()})
    for mine, theirs in pairs.items():
        if theirs in config and square(config[theirs], theirs, where) != sizes[mine]:
            raise ValueError(f"{where}: config.json says {theirs} {config[theirs]} but the weights have {sizes[mine]}")


def hf_labels(config: Optional[dict[str, Any]], num_classes: int) -> Optional[list[str]]:
    """config.json's id2label in label order (None without one)."""
    labels = (config or {}).get("id2label")
    if not labels:
        return None
    by_id = {int(k): str(v) for k, v in labels.items()}
    if sorted(by_id) != list(range(num_classes)):
        raise ValueError(f"config.json id2label numbers {len(by_id)} classes, the classifier has {num_classes}")
    return [by_id[i] for i in range(num_classes)]
