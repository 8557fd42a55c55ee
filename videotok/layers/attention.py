"""Multi-head attention that reads token sizes, with timm's parameter names (qkv, proj).

Proportional attention adds log(size) of the keys to the logits as an additive float mask to
`scaled_dot_product_attention`, so the fused kernels stay usable; with no size it is plain attention.
What reducers need (keys, CLS row, attention received) is computed only when requested, without
materialising the attention matrix unless `received_attn` is asked for.

`attend` picks the kernel. On a CPU, torch's softmax (and the flash-attention kernel built on it)
vectorises along the key axis and falls back to scalar code below one vector of keys: at 15 keys
a softmax takes about 14 times what it takes at 16 (AVX-512, torch 2.14, benchmarks/results/
attention_kernels.md). TimeSformer's attentions are that short (temporal attention over T frames,
spatial attention over a frame that merging has shrunk below 16 patches), so there, and only there,
attention runs as two matmuls and an exp-normalise that vectorise over the whole tensor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videotok.layers.placement import Layout


@dataclass(frozen=True)
class AttnRequest:
    """What a reducer needs from a block's attention; nothing is computed that nobody asked for."""

    keys: bool = False  # head-averaged keys, the similarity metric
    cls_attn: bool = False  # CLS-to-token attention row, the importance score
    received_attn: bool = False  # mean attention each token receives (importance without CLS)
    sharpness: bool = False  # sum of a log a over each token's own head-averaged row (vid_tldr's saliency)


@dataclass
class AttnInfo:
    """What an attention reports back for an AttnRequest (None where it was not asked for)."""

    keys: Optional[Tensor] = None  # [B, N, head_dim]
    cls_attn: Optional[Tensor] = None  # [B, N], head-averaged
    received_attn: Optional[Tensor] = None  # [B, N], mean over heads and queries
    sharpness: Optional[Tensor] = None  # [B, N], sum_j a_ij log a_ij of the head-averaged row i


SHORT_KEYS = 16  # below this many keys a CPU softmax runs scalar code (one AVX-512 vector of float32)


def attend(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor] = None, dropout_p: float = 0.0) -> Tensor:
    """softmax(q kᵀ / √d + bias) v for q [B, h, Nq, d], k, v [B, h, Nk, d] and an additive `bias`
    broadcastable to [B, h, Nq, Nk]: scaled_dot_product_attention, except for float32 on a CPU with
    fewer than SHORT_KEYS keys and no dropout (see the module doc), where the same product runs as
    matmuls (the same FLOPs; results within float rounding of the fused kernel's)."""
    if q.device.type == "cpu" and k.shape[-2] < SHORT_KEYS and dropout_p == 0.0 and q.dtype == torch.float32:
        logits = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # [B, h, Nq, Nk]
        if bias is not None:
            logits = logits + bias
        weights = (logits - logits.amax(dim=-1, keepdim=True)).exp()
        return (weights / weights.sum(dim=-1, keepdim=True)) @ v
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)


def size_bias(size: Optional[Tensor], dtype: torch.dtype, valid: Optional[Tensor] = None) -> Optional[Tensor]:
    """[B, N] sizes and/or [B, N] bool valid keys -> [B, 1, 1, N] additive logits bias (log size, and
    -inf where a key is padding), computed in float32 then cast (three ops for sizes alone)."""
    if size is None and valid is None:
        return None
    if size is None:
        bias = torch.zeros(valid.shape, device=valid.device)
    else:
        bias = (size if size.dtype == torch.float32 else size.float()).clamp_min(1e-6).log()
    if valid is not None:
        bias = bias.masked_fill(~valid, float("-inf"))
    bias = bias.reshape(bias.shape[0], 1, 1, bias.shape[1])
    return bias if bias.dtype == dtype else bias.to(dtype)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def queries_keys(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """q, k [.., h, N, d] as they enter `q kᵀ / √d` (unchanged here; CosineAttention normalises)."""
        return q, k

    def _heads(self, t: Tensor) -> Tensor:
        # [B, N, C] -> [B, heads, N, head_dim]
        b, n, _ = t.shape
        return t.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, size: Optional[Tensor], valid: Optional[Tensor] = None) -> Tensor:
        out = attend(q, k, v, size_bias(size, q.dtype, valid), self.dropout_p)  # [B, heads, Nq, head_dim]
        b, _, n, _ = out.shape
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, -1)))

    @property
    def dropout_p(self) -> float:
        return self.attn_drop if self.training else 0.0

    def forward(
        self,
        x: Tensor,
        size: Optional[Tensor] = None,
        request: Optional[AttnRequest] = None,
        num_prefix: int = 1,
        valid: Optional[Tensor] = None,
    ) -> tuple[Tensor, Optional[AttnInfo]]:
        """x [B, N, C] -> ([B, N, C], info about this attention when `request` asks for it).

        valid: optional [B, N] bool, False for padding that no query may attend to (its own output
        is meaningless and must be discarded by the caller)."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x [B, h, N, d]
        q, k = self.queries_keys(q, k)
        out = self._attend(q, k, v, size, valid)
        info = self.describe(q, k, size, request, num_prefix, valid) if request is not None else None
        return out, info

    def over_places(self, x: Tensor, placed: Layout) -> Tensor:
        """Divided attention's temporal half on merged tokens: attention over the T frames at every
        place of the grid, each (place, frame) slot played by the token that holds it.

        x [B, n, C] tokens -> [B, n, C], each token taking the output at its anchor slot. Projections
        run once per token; the attention itself is the grid's [B*P, T, T], so its cost does not
        depend on how the tokens were merged. Slots of dropped patches are masked as keys.
        """
        b, n, c = x.shape
        frames, places = placed.frames, placed.places
        at_slots = self.qkv(x).reshape(b * n, 3 * c).index_select(0, placed.slot_rows)  # [B*P*T, 3C]
        q, k, v = at_slots.reshape(b * places, frames, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.queries_keys(q, k)
        mask = placed.temporal_mask
        if mask is not None and mask.dtype != q.dtype:
            mask = mask.to(q.dtype)
        out = attend(q, k, v, mask, self.dropout_p)  # [B*P, heads, T, head_dim]
        out = out.transpose(1, 2).reshape(b * places * frames, c).index_select(0, placed.anchor_rows)
        return self.proj_drop(self.proj(out.reshape(b, n, c)))

    def over_frames(
        self, x: Tensor, placed: Layout, size: Optional[Tensor], request: Optional[AttnRequest], num_prefix: int,
    ) -> tuple[Tensor, Optional[AttnInfo]]:
        """Divided attention's spatial half on merged tokens: the prefix and the tokens of one frame
        attend among themselves, frame by frame, each frame padded to the fullest (`placed.width`)
        with masked seats. x [B, P+n, C] -> ([B, P+n, C], info as `forward`'s, per video): the
        prefix's output is averaged over the frames that hold tokens, and scores a token gets in its
        frame are divided by their number (as `Block._frames_to_video` does on the grid).

        The projections run once per token, the prefix's once per video: padding seats and the
        prefix's copies cost attention only."""
        b, total, c = x.shape
        p, frames, m = num_prefix, placed.frames, placed.width
        qkv = self.qkv(x)  # [B, P+n, 3C]
        framed = qkv.reshape(b * total, 3 * c).index_select(0, placed.frame_rows)  # [B*T*(P+M), 3C]
        q, k, v = framed.reshape(b * frames, p + m, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.queries_keys(q, k)
        out = attend(q, k, v, _seat_bias(size, placed, q.dtype), self.dropout_p)  # [B*T, heads, P+M, d]
        out = out.transpose(1, 2).reshape(b, frames, p + m, c)
        res = torch.cat([_mean_over_frames(out[:, :, :p], placed.occupied), _seats_to_tokens(out, placed)], dim=1)
        res = self.proj_drop(self.proj(res))  # [B, P+n, C]
        if request is None:
            return res, None
        scored = request.cls_attn or request.received_attn  # the scores that read the sizes
        size_s = None if size is None or not scored else _at_seats(size, placed)
        info = self.describe(q, k, size_s, replace(request, keys=False), p, placed.seat_valid)  # [B*T, P+M, ...]
        used = frames if placed.occupied is None else placed.occupied.sum(dim=1)  # [B] frames holding tokens

        def per_video(v: Optional[Tensor], scale: bool) -> Optional[Tensor]:
            if v is None:
                return None
            v = v.reshape(b, frames, p + m, *v.shape[2:])
            patches = _seats_to_tokens(v, placed)  # [B, n, ...]
            if scale:
                patches = patches / (used if isinstance(used, int) else used.view(b, *(1,) * (patches.dim() - 1)))
            return torch.cat([_mean_over_frames(v[:, :, :p], placed.occupied), patches], dim=1)

        keys = None
        if request.keys:
            keys = qkv[..., c : 2 * c].reshape(b, total, self.num_heads, self.head_dim).mean(dim=2)  # [B, P+n, d]
        return res, AttnInfo(
            keys=keys,
            cls_attn=per_video(info.cls_attn, True),
            received_attn=per_video(info.received_attn, True),
            sharpness=per_video(info.sharpness, False),
        )

    def cross(self, queries: Tensor, context: Tensor, context_size: Optional[Tensor] = None) -> Tensor:
        """Attention of `queries` [B, Nq, C] over `context` [B, Nk, C] with this layer's weights.

        Projects q only for the queries and k, v only for the context (no wasted projections).
        """
        c = queries.shape[-1]
        w_q, w_kv = self.qkv.weight[:c], self.qkv.weight[c:]
        b_q = b_kv = None
        if self.qkv.bias is not None:
            b_q, b_kv = self.qkv.bias[:c], self.qkv.bias[c:]
        k, v = F.linear(context, w_kv, b_kv).chunk(2, dim=-1)
        q, k = self.queries_keys(self._heads(F.linear(queries, w_q, b_q)), self._heads(k))
        return self._attend(q, k, self._heads(v), context_size)

    def describe(
        self, q: Tensor, k: Tensor, size: Optional[Tensor], request: AttnRequest, num_prefix: int,
        valid: Optional[Tensor] = None,
    ) -> AttnInfo:
        info = AttnInfo()
        if request.keys:
            info.keys = k.mean(dim=1)  # [B, N, d], head-averaged
        scored = request.cls_attn or request.received_attn  # the only readers of the bias (3 ops a block)
        bias = size_bias(size, torch.float32, valid) if scored else None
        if request.cls_attn:
            if num_prefix < 1:
                raise ValueError("CLS attention was requested from a model without a CLS token")
            logits = (q[:, :, :1].float() @ k.float().transpose(-2, -1)) * self.scale  # [B, h, 1, N]
            if bias is not None:
                logits = logits + bias
            info.cls_attn = logits.softmax(dim=-1).mean(dim=1)[:, 0]  # [B, N]
        if request.received_attn:
            received = torch.zeros(k.shape[0], k.shape[2], device=k.device, dtype=torch.float32)
            queries = torch.ones_like(received) if valid is None else valid.float()  # padding asks nothing
            for start in range(0, q.shape[2], 256):  # bounded memory: [B, h, 256, N] at a time
                logits = (q[:, :, start : start + 256].float() @ k.float().transpose(-2, -1)) * self.scale
                if bias is not None:
                    logits = logits + bias
                rows = logits.softmax(dim=-1).mean(dim=1)  # [B, 256, N]
                received += (rows * queries[:, start : start + 256, None]).sum(dim=1)
            info.received_attn = received / queries.sum(1, keepdim=True).clamp_min(1)  # [B, N]
        if request.sharpness:
            info.sharpness = self.sharpness(q, k, valid)
        return info

    def sharpness(self, q: Tensor, k: Tensor, valid: Optional[Tensor] = None) -> Tensor:
        """q, k [B, h, N, d] -> [B, N]: sum_j a_ij log a_ij of each token's attention row averaged over
        the heads, as vid-TLDR scores it: from the plain softmax (no size bias, whatever the
        proportional attention adds), padding keys masked. 0 log 0 counts 0 (xlogy)."""
        mask = None if valid is None else torch.zeros(valid.shape, device=k.device).masked_fill(~valid, float("-inf"))
        out = []
        for start in range(0, q.shape[2], 256):  # bounded memory: [B, h, 256, N] at a time
            # q scaled before the product, as the authors' attention does: the saliency's min-max
            # normalisation magnifies rounding where rows are nearly uniform
            logits = (q[:, :, start : start + 256].float() * self.scale) @ k.float().transpose(-2, -1)
            if mask is not None:
                logits = logits + mask[:, None, None, :]
            rows = logits.softmax(dim=-1).mean(dim=1)  # [B, 256, N], head-averaged
            out.append(torch.special.xlogy(rows, rows).sum(dim=-1))
        return torch.cat(out, dim=1)


class CosineAttention(Attention):
    """VideoMAE V2's `cos_attn`: logits are the cosine of query and key times a learned per-head
    scale, exp(min(s, log 100)) (`logit_scale` [h, 1, 1], the authors' `attn.scale`, starting at
    log 10). Folded into the queries, `q/|q| * scale * √d`, so every path (fused kernels, the scores
    reducers read) keeps computing `q kᵀ / √d`."""

    MAX_LOG_SCALE = math.log(100.0)

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__(dim, num_heads, qkv_bias, attn_drop, proj_drop)
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))

    def queries_keys(self, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        scale = self.logit_scale.clamp(max=self.MAX_LOG_SCALE).exp() * self.head_dim**0.5  # [h, 1, 1]
        return F.normalize(q, dim=-1) * scale.to(q.dtype), F.normalize(k, dim=-1)


def _at_seats(size: Tensor, placed: Layout) -> Tensor:
    """[B, P+n] token sizes -> [B*T, P+M] the size at every frame's seats."""
    return size.reshape(-1).index_select(0, placed.frame_rows).view(-1, placed.frame_rows.shape[0] // size.shape[0]
                                                                     // placed.frames)


def _seat_bias(size: Optional[Tensor], placed: Layout, dtype: torch.dtype) -> Optional[Tensor]:
    """The spatial attention's logits bias at the seats of `placed` (log size, -inf at empty seats),
    computed by the first block that uses the layout and kept on it: every block until the next
    reduction sees the same sizes and seats (a Layout is dropped whenever the sizes change)."""
    key = ("seat_bias", size is None, dtype)
    if key not in placed.cache:
        placed.cache[key] = size_bias(None if size is None else _at_seats(size, placed), dtype, placed.seat_valid)
    return placed.cache[key]


def _mean_over_frames(v: Tensor, occupied: Optional[Tensor]) -> Tensor:
    """v [B, T, P, ...] the prefix's values in every frame -> [B, P, ...], averaged over the frames
    holding tokens (`occupied` [B, T] float, None: all of them)."""
    if occupied is None:
        return v.mean(dim=1)
    weight = occupied.to(v.dtype).view(*occupied.shape, *(1,) * (v.dim() - 2))
    return (v * weight).sum(dim=1) / weight.sum(dim=1)


def _seats_to_tokens(v: Tensor, placed: Layout) -> Tensor:
    """v [B, T, P+M, ...] values at every frame's seats -> [B, n, ...] each patch token's, padding
    tokens zero."""
    rows = v.reshape(-1, *v.shape[3:])  # [B*T*(P+M), ...]
    if placed.padded:
        rows = torch.cat([rows, rows.new_zeros(1, *v.shape[3:])])  # the row padding tokens read
    return rows.index_select(0, placed.seat_rows).reshape(v.shape[0], -1, *v.shape[3:])
