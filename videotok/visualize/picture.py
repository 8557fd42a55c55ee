"""One clip through a backbone and its reducer -> the Picture of chosen blocks (what `videotok
visualize` writes and `TokenMapLogger` logs)."""
from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor

from videotok.flops import Cost, full_token_cost, measure_cost
from videotok.models.base import VideoBackbone
from videotok.visualize.draw import Geometry, Picture, draw, frames_rgb
from videotok.visualize.tracking import check_blocks, track


def parse_blocks(text: str, option: str = "--blocks") -> tuple[int, ...]:
    """"2,5,11" -> (2, 5, 11); the range is checked against the backbone later (check_blocks)."""
    try:
        blocks = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        blocks = ()
    if not blocks:
        raise ValueError(f"{option} {text!r}: expected block indices separated by commas, for example 2,5,11")
    return blocks


def default_blocks(tokens_per_block: Sequence[int], limit: int = 3) -> tuple[int, ...]:
    """Up to `limit` of the blocks that reduce (spread over them), then the last block; blocks 0,
    middle and last when none reduces. `tokens_per_block`: tokens entering each block, then after
    the last one (Cost.tokens_per_block)."""
    depth = len(tokens_per_block) - 1
    reducing = [i for i in range(depth) if tokens_per_block[i + 1] < tokens_per_block[i]]
    if not reducing:
        return tuple(sorted({0, depth // 2, depth - 1}))
    if len(reducing) > limit:
        reducing = [reducing[round(i * (len(reducing) - 1) / (limit - 1))] for i in range(limit)] if limit > 1 else reducing[:1]
    return tuple(sorted(set(reducing) | {depth - 1}))


def reducer_text(model: VideoBackbone) -> str:
    reducer = model.reducer
    setting = reducer.extra_repr()
    return reducer.name if setting in ("", reducer.name) else f"{reducer.name} ({setting})"


def caption(model: VideoBackbone, video_name: str) -> tuple[list[str], tuple[int, ...]]:
    """(header lines, default blocks) of a picture of `model`: its cost counted once with its reducer
    and once without, and the blocks where its token count drops."""
    cost = measure_cost(model)
    return header(model, video_name, cost, full_token_cost(model)), default_blocks(cost.tokens_per_block)


def header(model: VideoBackbone, video_name: str, cost: Cost, full: Cost) -> list[str]:
    """Two lines: what was drawn, and what it costs (GFLOPs per view, the papers' convention)."""
    gflops = f"GFLOPs per view: {cost.gflops:.4g}"
    if abs(full.gflops - cost.gflops) > 1e-12:
        gflops += f" (full tokens {full.gflops:.4g}: {100 * (1 - cost.gflops / full.gflops):.1f} % saved)"
    return [f"{video_name} | {model.model_name} | reducer: {reducer_text(model)}", gflops]


def token_picture(model: VideoBackbone, clip: Tensor, mean: Sequence[float], std: Sequence[float],
                  blocks: Sequence[int], header_lines: Optional[Sequence[str]] = None) -> Picture:
    """Track the normalised `clip` [C, T, H, W] through `model` and draw `blocks` over its frames
    (`mean`, `std`: the normalisation to undo for display)."""
    blocks = check_blocks(blocks, len(model.blocks))
    maps = track(model, clip, blocks)
    return draw(frames_rgb(clip, mean, std), maps, Geometry.of(model), header_lines or [model.model_name])
