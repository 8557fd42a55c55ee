"""Size-aware attention (videotok/layers/attention.py): proportional attention and what it reports to reducers."""
from __future__ import annotations

import torch

from videotok.layers import attention
from videotok.layers.attention import Attention, AttnRequest


def test_proportional_attention_equals_duplicated_keys() -> None:
    """A token of size 2 attracts attention exactly as two identical copies of it would."""
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4).eval()
    a, b, c = torch.randn(3, 1, 1, 32).unbind(0)
    duplicated = torch.cat([a, b, b, c], dim=1)
    merged = torch.cat([a, b, c], dim=1)
    with torch.no_grad():
        out_dup, _ = attn(duplicated, None)
        out_merged, _ = attn(merged, torch.tensor([[1.0, 2.0, 1.0]]))
    torch.testing.assert_close(out_merged, out_dup[:, [0, 1, 3]], atol=1e-5, rtol=1e-5)


def test_attention_info_matches_the_attention_matrix() -> None:
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4).eval()
    x, size = torch.randn(2, 6, 32), torch.tensor([[1.0, 2, 1, 3, 1, 1]] * 2)
    with torch.no_grad():
        _, info = attn(x, size, AttnRequest(keys=True, cls_attn=True, received_attn=True))
        q, k, _ = attn.qkv(x).reshape(2, 6, 3, 4, 8).permute(2, 0, 3, 1, 4)
        full = ((q @ k.transpose(-2, -1)) * attn.scale + size.log()[:, None, None]).softmax(-1)  # [B, h, N, N]
    torch.testing.assert_close(info.keys, k.mean(1))
    torch.testing.assert_close(info.cls_attn, full[:, :, 0].mean(1))
    torch.testing.assert_close(info.received_attn, full.mean(2).mean(1))


def test_short_attention_kernel_matches_the_fused_kernel() -> None:
    """`attend` runs short CPU attention as matmuls (a softmax over fewer than 16 keys runs scalar
    code there): the same result as scaled_dot_product_attention, masks and gradients included, and
    the fused kernel from SHORT_KEYS keys on."""
    torch.manual_seed(0)
    for keys in (1, 4, 15, attention.SHORT_KEYS):
        q = torch.randn(3, 2, 5, 8, requires_grad=True)
        k, v = torch.randn(3, 2, keys, 8), torch.randn(3, 2, keys, 8)
        bias = attention.size_bias(torch.rand(3, keys) + 0.5, torch.float32, torch.rand(3, keys) < 0.8)
        bias[..., 0] = 0.0  # at least one key per row
        got = attention.attend(q, k, v, bias)
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
        (grad_got,) = torch.autograd.grad(got.sum(), q)
        (grad_want,) = torch.autograd.grad(want.sum(), q)
        torch.testing.assert_close(grad_got, grad_want, atol=1e-6, rtol=1e-5)
