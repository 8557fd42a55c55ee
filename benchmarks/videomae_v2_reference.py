"""VideoMAE V2 checkpoints against their authors' model: the same logits from the same saved file.

    python benchmarks/videomae_v2_reference.py /path/to/VideoMAEv2            # a clone (or its git dir)
    python benchmarks/videomae_v2_reference.py /path/to/VideoMAEv2 --write tests/fixtures/videomae_v2_reference.npz

Their `VisionTransformer` (models/modeling_finetune.py, read at run time from the path given, never
committed) is built with the options their registered sizes use (qkv bias, eps 1e-6, their MLP
ratio) at a reduced depth, loads a random state dict in their key layout (strictly: a key we made up
would fail here), and gives the logits of a random clip. Each case's state dict is saved as their
scripts save it, DeepSpeed's fp16 `{'module': ...}` and `utils.save_model`'s `{'model', 'args', ...}`,
and loaded through videotok's published loader; the logits are compared. Nothing big is committed:
the state dicts and clips come from seeded torch generators (`authors_state`, `clip`), which the test
runs again, so the fixture holds only their logits and checksums of what they were computed from.

Cases: a ViT-B-like K710 model (768 wide, 12 heads of 64, 710 classes) in fp16; ViT-g/14 at 2 blocks
(1408 wide, 16 heads of 88, MLP ratio 48/11) in both layouts; cos_attn (learned logit scale, one head
past their clamp); use_mean_pooling=False (final norm, first token).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference_code import finish, load_module  # noqa: E402

TOLERANCE = 1e-5
LAYOUTS = ("deepspeed_fp16", "save_model")


@dataclass(frozen=True)
class Case:
    name: str
    width: int
    depth: int
    heads: int
    patch: int
    mlp_hidden: int
    classes: int
    frames: int  # one tubelet of 2 frames keeps the clip (and the fixture) tiny
    size: int
    layouts: tuple[str, ...]
    args_model: Optional[str] = None  # the saved args.model of the save_model layout
    cos_attn: bool = False
    mean_pooling: bool = True
    layer_scale: bool = False
    seed: int = 0


CASES = (
    Case("vit_b_k710", 768, 2, 12, 16, 3072, 710, 2, 32, ("deepspeed_fp16",), seed=1),
    Case("vit_g14", 1408, 2, 16, 14, 6144, 400, 2, 28, LAYOUTS, args_model="vit_giant_patch14_224", seed=2),
    Case("cos_attn", 384, 2, 6, 16, 1536, 10, 2, 32, ("save_model",), args_model="vit_small_patch16_224",
         cos_attn=True, layer_scale=True, seed=3),
    Case("no_mean_pooling", 384, 2, 6, 16, 1536, 10, 2, 32, ("deepspeed_fp16",), mean_pooling=False, seed=4),
)


def _shapes(case: Case) -> list[tuple[str, tuple[int, ...], str]]:
    """(key, shape, kind) of every tensor their model's state dict holds, in their names."""
    c, hidden = case.width, case.mlp_hidden
    out = [("patch_embed.proj.weight", (c, 3, 2, case.patch, case.patch), "linear"),
           ("patch_embed.proj.bias", (c,), "bias")]
    for i in range(case.depth):
        b = f"blocks.{i}."
        out += [(b + "norm1.weight", (c,), "norm"), (b + "norm1.bias", (c,), "bias")]
        if case.cos_attn:
            out.append((b + "attn.scale", (case.heads, 1, 1), "log_scale"))
        out += [(b + "attn.q_bias", (c,), "bias"), (b + "attn.v_bias", (c,), "bias"),
                (b + "attn.qkv.weight", (3 * c, c), "linear"),
                (b + "attn.proj.weight", (c, c), "linear"), (b + "attn.proj.bias", (c,), "bias"),
                (b + "norm2.weight", (c,), "norm"), (b + "norm2.bias", (c,), "bias"),
                (b + "mlp.fc1.weight", (hidden, c), "linear"), (b + "mlp.fc1.bias", (hidden,), "bias"),
                (b + "mlp.fc2.weight", (c, hidden), "linear"), (b + "mlp.fc2.bias", (c,), "bias")]
        if case.layer_scale:
            out += [(b + "gamma_1", (c,), "gamma"), (b + "gamma_2", (c,), "gamma")]
    final = "fc_norm" if case.mean_pooling else "norm"
    out += [(f"{final}.weight", (c,), "norm"), (f"{final}.bias", (c,), "bias"),
            ("head.weight", (case.classes, c), "head"), ("head.bias", (case.classes,), "bias")]
    return out


@lru_cache(maxsize=1)
def authors_state(case: Case) -> dict[str, Tensor]:
    """A random state dict in their key layout, every value exact in fp16 (so both layouts hold the
    same numbers); cached for the last case (callers copy, never change it). Linears ~ N(0, 1/fan_in)
    so activations stay O(1) through the blocks, the head larger so that logits are O(1): a wrong head
    count shows as a difference far above TOLERANCE."""
    gen = torch.Generator().manual_seed(case.seed)
    state = {}
    for key, shape, kind in _shapes(case):
        noise = torch.randn(shape, generator=gen)
        if kind == "linear":
            value = noise / np.sqrt(np.prod(shape[1:]))
        elif kind == "head":
            value = noise * 2 / np.sqrt(shape[1])
        elif kind == "norm":
            value = 1 + 0.1 * noise
        elif kind == "gamma":
            value = 0.5 + 0.1 * noise
        elif kind == "log_scale":
            value = np.log(10.0) + 0.5 * noise
            value[0] = 5.0  # past their clamp at log(100): the clamp must be reproduced
        else:
            value = 0.1 * noise
        state[key] = value.half().float()
    return state


def clip(case: Case) -> Tensor:
    """The input [2, 3, frames, size, size] (already normalised)."""
    gen = torch.Generator().manual_seed(1000 + case.seed)
    return torch.randn(2, 3, case.frames, case.size, case.size, generator=gen)


def checksum(tensors: list[Tensor]) -> np.ndarray:
    """Two float64 sums that tell whether regenerated weights or clips are those the fixture saw."""
    flat = torch.cat([t.reshape(-1).double() for t in tensors])
    weights = torch.arange(flat.numel(), dtype=torch.float64) % 251
    return np.array([float(flat.sum()), float((flat * weights).sum())])


def save(case: Case, layout: str, path: Path) -> Path:
    """`authors_state(case)` saved as their training scripts save it."""
    state = authors_state(case)
    if layout == "deepspeed_fp16":  # DeepSpeed's model states under 'module', in fp16
        torch.save({"module": {k: v.half() for k, v in state.items()}, "epoch": 1}, path)
    elif layout == "save_model":  # utils.save_model without DeepSpeed: the argparse arguments beside
        args = argparse.Namespace(model=case.args_model, num_frames=case.frames, input_size=case.size,
                                  tubelet_size=2, nb_classes=case.classes, use_mean_pooling=case.mean_pooling,
                                  cos_attn=case.cos_attn)
        torch.save({"model": state, "optimizer": {}, "epoch": 1, "scaler": {}, "args": args}, path)
    else:
        raise ValueError(f"layout {layout!r}: choose one of {LAYOUTS}")
    return path


def theirs(module, case: Case) -> Tensor:
    """Their model with the case's sizes, the case's weights loaded strictly, its logits on `clip`."""
    model = module.VisionTransformer(
        img_size=case.size, patch_size=case.patch, num_classes=case.classes, embed_dim=case.width,
        depth=case.depth, num_heads=case.heads, mlp_ratio=case.mlp_hidden / case.width, qkv_bias=True,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), init_values=0.1 if case.layer_scale else 0.0,
        all_frames=case.frames, tubelet_size=2, use_mean_pooling=case.mean_pooling, cos_attn=case.cos_attn)
    model.load_state_dict(authors_state(case), strict=True)
    with torch.no_grad():
        return model.eval()(clip(case))


def ours(case: Case, layout: str, folder: Path, **loader_args) -> Tensor:
    """videotok's logits on `clip` from the case saved in `layout` (a DeepSpeed file states neither
    frames nor size: the case's are given, as a user would)."""
    from dataclasses import replace

    from videotok.models.published import load_published
    from videotok.models.registry import built_name, list_models

    ckpt = load_published(str(save(case, layout, folder / f"{case.name}_{layout}.pth")), **loader_args)
    # a sized name states the image size: the one for this clip
    name = ckpt.model if ckpt.model in list_models() else built_name(ckpt.model, case.patch, case.size)
    ckpt = replace(ckpt, model=name, model_args=dict(ckpt.model_args, num_frames=case.frames, img_size=case.size))
    with torch.no_grad():
        return ckpt.build()(clip(case))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("videomaev2", help="a clone of OpenGVLab/VideoMAEv2 (or its git directory)")
    parser.add_argument("--write", help="write the fixture (their logits, checksums) here")
    args = parser.parse_args()
    module = load_module(args.videomaev2, "models/modeling_finetune.py", "videomaev2_finetune")
    fixture, cases, bad = {}, 0, 0
    with tempfile.TemporaryDirectory() as folder:
        for case in CASES:
            expected = theirs(module, case)
            fixture[f"logits/{case.name}"] = expected.numpy()
            fixture[f"weights/{case.name}"] = checksum(list(authors_state(case).values()))
            fixture[f"clip/{case.name}"] = checksum([clip(case)])
            for layout in case.layouts:
                difference = float((ours(case, layout, Path(folder)) - expected).abs().max())
                cases, bad = cases + 1, bad + (difference > TOLERANCE)
                print(f"{case.name:16s} {layout:15s} max |logit difference| {difference:.2e} "
                      f"(logits up to {float(expected.abs().max()):.2f})")
    return finish(cases, bad, fixture, args.write)


if __name__ == "__main__":
    raise SystemExit(main())
