"""A videotok backbone made of another model's parameters: no copy, so what trains one trains the other.

The backbone is built on the meta device (no weights), then each of its parameters becomes the host's
Parameter of the same videotok name (the published conversions' rename tables give the names). Two
layouts differ from ours and get a small adapter instead of a copy:
- separate q, k, v projections (ViViT, VideoMAE in transformers) -> `FusedLinear`, our `qkv`, whose
  weight is the concatenation of the host's three, taken at every call;
- a per-frame Conv2d patch kernel (TimeSformer, image ViTs) -> `FrameConv`, our tubelet-1 Conv3d.
"""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_QKV = re.compile(r"^(?P<prefix>.+)\.(?P<part>[qkv])\.(?P<kind>weight|bias)$")
PATCH_KERNEL = "patch_embed.proj"


class FusedLinear(nn.Module):
    """Separate q, k and v projections used as one `qkv` Linear (rows q, k, v). The weight is
    concatenated from the host's Parameters at each call (a copy of 3C x C, small beside the matmul
    it feeds), so gradients reach them; a missing bias part (VideoMAE's key) is zero, which never
    changes attention."""

    def __init__(self, weights: list[nn.Parameter], biases: list[Optional[nn.Parameter]]) -> None:
        super().__init__()
        for part, weight in zip("qkv", weights):
            self.register_parameter(f"{part}_weight", weight)
        for part, bias in zip("qkv", biases):
            self.register_parameter(f"{part}_bias", bias)
        self.in_features = weights[0].shape[1]
        self.out_features = sum(w.shape[0] for w in weights)

    @property
    def weight(self) -> Tensor:
        return torch.cat([self.q_weight, self.k_weight, self.v_weight])  # 3 x [C, C] -> [3C, C]

    @property
    def bias(self) -> Optional[Tensor]:
        parts = [self.q_bias, self.k_bias, self.v_bias]
        like = next((b for b in parts if b is not None), None)
        if like is None:
            return None
        return torch.cat([like.new_zeros(w.shape[0]) if b is None else b
                          for b, w in zip(parts, (self.q_weight, self.k_weight, self.v_weight))])

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class FrameConv(nn.Module):
    """A per-frame Conv2d patch kernel [C', C, p, p] run as our tubelet-1 Conv3d: video [B, C, T, H, W]
    -> [B, C', T, H/p, W/p]. The kernel is the host's Parameter, viewed, not copied."""

    def __init__(self, weight: nn.Parameter, bias: Optional[nn.Parameter], stride: tuple[int, int]) -> None:
        super().__init__()
        self.weight, self.bias, self.stride = weight, bias, (1, *stride)

    def forward(self, video: Tensor) -> Tensor:
        return F.conv3d(video, self.weight.unsqueeze(2), self.bias, stride=self.stride)


def share_parameters(backbone: nn.Module, params: dict[str, nn.Parameter], where: str) -> None:
    """Make `backbone`'s parameters the Parameters `params` (videotok names -> the host's objects).

    Every backbone parameter must be given (reducer parameters aside: the reducer is attached later),
    with the shape it has; a name the backbone lacks is an error naming it, as a silently unused
    weight would make a model that runs but is wrong."""
    params = dict(params)
    _install_fused_qkv(backbone, params, where)
    kernel = params.get(f"{PATCH_KERNEL}.weight")
    if kernel is not None and kernel.ndim == 4:
        stride = tuple(kernel.shape[-2:])
        backbone.get_submodule("patch_embed").proj = FrameConv(params.pop(f"{PATCH_KERNEL}.weight"),
                                                               params.pop(f"{PATCH_KERNEL}.bias", None), stride)
    own = dict(backbone.named_parameters())
    problems = [f"{name} (the backbone has no such parameter)" for name in params if name not in own]
    problems += [f"{name} {tuple(p.shape)} vs {tuple(own[name].shape)}" for name, p in params.items()
                 if name in own and p.shape != own[name].shape]
    if problems:
        raise ValueError(f"{where}: its parameters do not fit videotok's backbone: {'; '.join(problems[:6])}")
    for name, param in params.items():
        owner, _, leaf = name.rpartition(".")
        backbone.get_submodule(owner)._parameters[leaf] = param
    left = [name for name, p in backbone.named_parameters() if p.is_meta and not name.startswith("reducer.")]
    if left:
        raise ValueError(f"{where}: no parameter of it gives videotok's {', '.join(left[:6])}")


def _install_fused_qkv(backbone: nn.Module, params: dict[str, nn.Parameter], where: str) -> None:
    """`<attn>.{q,k,v}.{weight,bias}` entries of `params` -> a FusedLinear at `<attn>.qkv` (removed
    from `params`)."""
    groups: dict[str, dict[str, nn.Parameter]] = defaultdict(dict)
    for name in [n for n in params if _QKV.match(n)]:
        match = _QKV.match(name)
        groups[match["prefix"]][f"{match['part']}.{match['kind']}"] = params.pop(name)
    for prefix, parts in groups.items():
        weights = [parts.get(f"{p}.weight") for p in "qkv"]
        if any(w is None for w in weights):
            raise ValueError(f"{where}: {prefix} lacks some of its q/k/v weights")
        fused = FusedLinear(weights, [parts.get(f"{p}.bias") for p in "qkv"])
        target = backbone.get_submodule(f"{prefix}.qkv")
        if (fused.out_features, fused.in_features) != tuple(target.weight.shape):
            raise ValueError(f"{where}: {prefix} q/k/v make [{fused.out_features}, {fused.in_features}], "
                             f"videotok's qkv is {list(target.weight.shape)}")
        if (target.bias is None) != (fused.bias is None):
            raise ValueError(f"{where}: {prefix} q/k/v {'have no' if fused.bias is None else 'have a'} bias, "
                             "videotok's qkv differs (qkv_bias)")
        backbone.get_submodule(prefix).qkv = fused


def materialise_buffers(backbone: nn.Module, device: torch.device) -> None:
    """Buffers left on the meta device by building there: VideoMAE's fixed position table is the only
    one a backbone has, rebuilt on `device`."""
    from videotok.models.videomae import sinusoid_table

    for name, buffer in list(backbone.named_buffers()):
        if not buffer.is_meta:
            continue
        owner, _, leaf = name.rpartition(".")
        if leaf != "pos_table":
            raise ValueError(f"buffer {name} cannot be rebuilt off the meta device")
        backbone.get_submodule(owner)._buffers[leaf] = sinusoid_table(*buffer.shape[1:]).to(device)
