"""The importance score that `evit` and `crucial_merge` rank tokens by, chosen in one place.

With a CLS token it is the CLS-to-token attention row (EViT), head-averaged. A backbone without one
(VideoMAE, num_prefix 0) has no such row, so the score is the attention each token receives,
averaged over every query and head: the tokens the whole clip attends to. Both rows sum to one over
the tokens, so the two scores are on the same scale. Received attention needs the whole attention
matrix, which the fused kernel never forms: it costs one more q k^T pass over the tokens at each
reducing block (computed in row chunks), and `videotok flops` counts it.
"""
from __future__ import annotations

from torch import Tensor

from videotok.layers.attention import AttnInfo, AttnRequest


def importance_request(num_prefix: int, keys: bool = False) -> AttnRequest:
    """What to ask a block for: the CLS row when a CLS token leads (num_prefix >= 1), else the
    attention received; `keys` also asks for the head-averaged keys (the similarity metric)."""
    if num_prefix >= 1:
        return AttnRequest(keys=keys, cls_attn=True)
    return AttnRequest(keys=keys, received_attn=True)


def importance(info: AttnInfo) -> Tensor:
    """[B, N] importance of every token (prefix included) from what `importance_request` asked for."""
    score = info.cls_attn if info.cls_attn is not None else info.received_attn
    if score is None:
        raise ValueError("the block reported neither CLS attention nor received attention; ask with importance_request")
    return score
