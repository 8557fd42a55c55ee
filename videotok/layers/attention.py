"""Multi-head attention that reads token sizes, with timm's parameter names (qkv, proj).

Proportional attention adds log(size) of the keys to the logits as an additive float mask to
`scaled_dot_product_attention`, so the fused kernels stay usable; with no size it is plain attention.
What reducers need (keys, CLS row, attention received) is computed only when requested, without
materialising the attention matrix unless `received_attn` is asked for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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


def size_bias(size: Optional[Tensor], dtype: torch.dtype, valid: Optional[Tensor] = None) -> Optional[Tensor]:
    """[B, N] sizes and/or [B, N] bool valid keys -> [B, 1, 1, N] additive logits bias (log size, and
    -inf where a key is padding), computed in float32 then cast."""
    if size is None and valid is None:
        return None
    bias = torch.zeros(valid.shape, device=valid.device) if size is None else size.float().clamp_min(1e-6).log()
    if valid is not None:
        bias = bias.masked_fill(~valid, float("-inf"))
    return bias[:, None, None, :].to(dtype)


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

    def _heads(self, t: Tensor) -> Tensor:
        # [B, N, C] -> [B, heads, N, head_dim]
        b, n, _ = t.shape
        return t.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, size: Optional[Tensor], valid: Optional[Tensor] = None) -> Tensor:
        bias = size_bias(size, q.dtype, valid)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.attn_drop if self.training else 0.0
        )  # [B, heads, Nq, head_dim]
        b, _, n, _ = out.shape
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, -1)))

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
        out = self._attend(q, k, v, size, valid)
        info = self.describe(q, k, size, request, num_prefix, valid) if request is not None else None
        return out, info

    def over_places(self, x: Tensor, slots: Tensor, present: Tensor, read: Tensor) -> Tensor:
        """Divided attention's temporal half on merged tokens: attention over the T frames at every
        place of the grid, each (frame, place) slot played by the token that holds it.

        x [B, n, C] tokens; slots [B, T, P] the token holding each slot; present [B, T, P] bool (False:
        the patch was dropped, masked as a key); read [B, n] the slot (t * P + place) whose output
        each token takes, its own anchor. Projections run once per token; the attention itself is
        the grid's [B*P, T, T], so its cost does not depend on how the tokens were merged.
        """
        b, n, c = x.shape
        _, frames, places = slots.shape
        qkv = self.qkv(x)  # [B, n, 3C]
        at_slots = qkv.gather(1, slots.reshape(b, frames * places, 1).expand(-1, -1, 3 * c))  # [B, T*P, 3C]
        q, k, v = (
            at_slots.reshape(b, frames, places, 3, self.num_heads, self.head_dim)
            .permute(3, 0, 2, 4, 1, 5)
            .reshape(3, b * places, self.num_heads, frames, self.head_dim)
            .unbind(0)
        )  # 3 x [B*P, heads, T, head_dim]
        # a place dropped in every frame is read by no token: leave it unmasked rather than all -inf
        keys = present | ~present.any(dim=1, keepdim=True)  # [B, T, P]
        mask = torch.zeros(keys.shape, dtype=q.dtype, device=q.device).masked_fill(~keys, float("-inf"))
        mask = mask.permute(0, 2, 1).reshape(b * places, 1, 1, frames)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.attn_drop if self.training else 0.0
        )  # [B*P, heads, T, head_dim]
        out = out.reshape(b, places, self.num_heads, frames, self.head_dim).permute(0, 3, 1, 2, 4)
        out = out.reshape(b, frames * places, c).gather(1, read.unsqueeze(-1).expand(-1, -1, c))  # [B, n, C]
        return self.proj_drop(self.proj(out))

    def cross(self, queries: Tensor, context: Tensor, context_size: Optional[Tensor] = None) -> Tensor:
        """Attention of `queries` [B, Nq, C] over `context` [B, Nk, C] with this layer's weights.

        Projects q only for the queries and k, v only for the context (no wasted projections).
        """
        c = queries.shape[-1]
        w_q, w_kv = self.qkv.weight[:c], self.qkv.weight[c:]
        b_q = b_kv = None
        if self.qkv.bias is not None:
            b_q, b_kv = self.qkv.bias[:c], self.qkv.bias[c:]
        q = self._heads(F.linear(queries, w_q, b_q))
        k, v = F.linear(context, w_kv, b_kv).chunk(2, dim=-1)
        return self._attend(q, self._heads(k), self._heads(v), context_size)

    def describe(
        self, q: Tensor, k: Tensor, size: Optional[Tensor], request: AttnRequest, num_prefix: int,
        valid: Optional[Tensor] = None,
    ) -> AttnInfo:
        info = AttnInfo()
        if request.keys:
            info.keys = k.mean(dim=1)  # [B, N, d], head-averaged
        bias = size_bias(size, torch.float32, valid)
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
