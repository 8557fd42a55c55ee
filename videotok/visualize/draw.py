"""Token maps drawn over the clip's frames: numpy for the pixels, PIL for the titles.

Each block gets a panel per frame: every token's region filled with one colour from a fixed palette
(blended with the frame) and outlined where neighbouring patches belong to different tokens (as
ToMe draws its merges); patches no token holds are greyed. A token keeps the colour of the first
original patch it holds, so a token spanning frames (cross_frame, tubelets) has one colour in
every frame, and a token that survives several blocks keeps its colour from block to block. Where
the block has a heat map (the importance a reducer ranks by, or what semantic tokens draw from), a
second panel shows it over the frame's luminance, with the outlines of the tokens it was measured on.
A pixel-level reducer (rlt) gets a first column, before block 0: the tubelets it removed as repeats
grey, each kept one with the length of its run written in it.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from videotok.visualize.tracking import BlockMap

BORDER = np.array([1.0, 1.0, 1.0])  # token outlines
BACKGROUND = 255
TEXT = (20, 20, 20)
GAP = 4  # pixels between panels
MIN_PANEL = 128  # small clips are enlarged (nearest) to at least this many pixels


def palette(size: int = 64) -> np.ndarray:
    """[size, 3] float colours; consecutive entries far apart in hue (golden-ratio steps), so
    neighbouring patches' tokens differ even before the outlines are drawn."""
    hues = (np.arange(size) * 0.618033988749895) % 1.0
    return np.array([colorsys.hsv_to_rgb(h, 0.75 if i % 2 else 0.55, 0.95) for i, h in enumerate(hues)])


PALETTE = palette()


@dataclass(frozen=True)
class Geometry:
    """How the token grid covers the clip: patch (t', h, w) covers frames t' * tubelet ... and the
    `patch` x `patch` pixels at (h, w); `scale` enlarges every pixel for display."""

    grid: tuple[int, int, int]
    tubelet: int
    patch: int
    scale: int = 1

    @classmethod
    def of(cls, model) -> "Geometry":
        """A backbone's geometry (the contract's `grid` and `patch_embed`), enlarged to MIN_PANEL."""
        scale = max(1, -(-MIN_PANEL // model.img_size))
        return cls(tuple(model.grid), model.patch_embed.tubelet_size, model.patch_embed.patch_size, scale)

    def pixels(self, per_patch: np.ndarray) -> np.ndarray:
        """[T', H', W'] values per patch -> [T, H * scale, W * scale] per displayed pixel."""
        side = self.patch * self.scale
        return per_patch.repeat(self.tubelet, axis=0).repeat(side, axis=1).repeat(side, axis=2)

    def enlarge(self, frames: np.ndarray) -> np.ndarray:
        """[T, H, W, 3] -> [T, H * scale, W * scale, 3]."""
        return frames.repeat(self.scale, axis=1).repeat(self.scale, axis=2)


def frames_rgb(video, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """A normalised clip [C, T, H, W] (torch or numpy) -> [T, H, W, 3] floats in [0, 1]."""
    clip = np.asarray(video.detach().float().cpu() if hasattr(video, "detach") else video, dtype=np.float32)
    clip = clip * np.asarray(std, np.float32)[:, None, None, None] + np.asarray(mean, np.float32)[:, None, None, None]
    return np.clip(clip.transpose(1, 2, 3, 0), 0.0, 1.0)  # [C, T, H, W] -> [T, H, W, C]


def luminance(frame: np.ndarray) -> np.ndarray:
    """[..., 3] -> [..., 1]."""
    return (frame @ np.array([0.299, 0.587, 0.114]))[..., None]


def outlines(labels: np.ndarray) -> np.ndarray:
    """[..., H, W] labels -> bool mask of pixels whose right or lower neighbour has another label."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[..., :, :-1] |= labels[..., :, :-1] != labels[..., :, 1:]
    edge[..., :-1, :] |= labels[..., :-1, :] != labels[..., 1:, :]
    return edge


def colour_index(regions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of a [T', H', W'] map -> (sorted ids, the palette entry of each): the palette entry
    of a token is that of the first original patch (t-major) it holds."""
    flat = regions.reshape(-1)
    held = np.nonzero(flat >= 0)[0]
    ids, first = np.unique(flat[held], return_index=True)
    return ids, held[first] % len(PALETTE)


def region_panels(frames: np.ndarray, labels: np.ndarray, ids: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Frames [T, H, W, 3] float and their pixel labels [T, H, W] -> uint8 panels [T, H, W, 3]."""
    held = labels >= 0
    fill = np.zeros(labels.shape + (3,))
    if len(ids):
        fill = PALETTE[colours[np.searchsorted(ids, labels).clip(0, len(ids) - 1)]]
    grey = 0.2 + 0.35 * luminance(frames)
    out = np.where(held[..., None], 0.5 * frames + 0.5 * fill, grey)
    out[outlines(labels)] = BORDER
    return (out * 255).round().astype(np.uint8)


def heat_panels(frames: np.ndarray, heat: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Heat [T, H, W] (NaN: no token) over the frames' luminance, outlined by `labels`."""
    valid = ~np.isnan(heat)
    low, high = (np.nanmin(heat), np.nanmax(heat)) if valid.any() else (0.0, 1.0)
    scaled = np.where(valid, (heat - low) / max(high - low, 1e-12), 0.0)
    colour = colormaps["inferno"](scaled)[..., :3]
    grey = luminance(frames)
    out = np.where(valid[..., None], 0.35 * grey + 0.65 * colour, 0.2 + 0.35 * grey)
    out[outlines(labels)] = BORDER
    return (out * 255).round().astype(np.uint8)


@dataclass
class Column:
    """One column of the picture: a title and a panel per frame."""

    title: str
    panels: np.ndarray  # [T, H, W, 3] uint8
    labels: Optional[np.ndarray] = None  # [T, H, W] the token id drawn at each pixel (-1: greyed)


def token_title(item: BlockMap) -> str:
    prefix = {0: "", 1: " + CLS"}.get(item.prefix, f" + {item.prefix} CLS")
    if item.block < 0:
        return f"before block 0: kept\n{item.tokens} tokens{prefix}"
    return f"block {item.block}\n{item.tokens} tokens{prefix}"


def label_runs(panels: np.ndarray, runs: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Write each kept tubelet's run length (runs [T', H', W'], 0 = removed) in its patch, on the
    first frame of the tubelet: [T, H, W, 3] uint8 -> the same, labelled."""
    side = geometry.patch * geometry.scale
    font = _font(max(8, min(14, side - 4)))
    out = panels.copy()
    for t in range(runs.shape[0]):
        frame = t * geometry.tubelet
        if frame >= len(out) or not runs[t].any():
            continue
        image = Image.fromarray(out[frame])
        pen = ImageDraw.Draw(image)
        for h, w in zip(*np.nonzero(runs[t])):
            pen.text((int(w) * side + 2, int(h) * side + 1), str(int(runs[t, h, w])), fill=TEXT, font=font)
        out[frame] = np.asarray(image)
    return out


def block_columns(frames: np.ndarray, item: BlockMap, geometry: Geometry) -> list[Column]:
    """The token panels of one block, and its heat panels where it has a heat map."""
    regions = item.regions.cpu().numpy()
    labels = geometry.pixels(regions)[: len(frames)]
    ids, colours = colour_index(regions)
    panels = region_panels(frames, labels, ids, colours)
    if item.runs is not None:  # rlt: removed tubelets are grey, kept ones carry their run length
        panels = label_runs(panels, item.runs.cpu().numpy(), geometry)
    columns = [Column(token_title(item), panels, labels)]
    if item.heat is not None:
        heat = geometry.pixels(item.heat.float().cpu().numpy())[: len(frames)]
        around = geometry.pixels(item.heat_regions.cpu().numpy())[: len(frames)]
        columns.append(Column(f"block {item.block}\n{item.heat_label}", heat_panels(frames, heat, around)))
    return columns


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> list[str]:
    """`text` broken at spaces into lines at most `width` pixels wide (a longer word stays whole)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


@dataclass
class Picture:
    """The drawn clip: `header` lines, then columns (the frames, then each block's panels)."""

    header: list[str]
    columns: list[Column] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return len(self.columns[0].panels)

    def _top(self, width: int) -> np.ndarray:
        """The header (wrapped to `width` pixels) and the column titles: [h, width, 3] uint8."""
        head_font, title_font = _font(14), _font(12)
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        lines = [part for line in self.header for part in _wrap(probe, line, head_font, width - 2 * GAP)]
        head_h, title_h = 18 * len(lines) + 6, 34
        image = Image.new("RGB", (width, head_h + title_h), (BACKGROUND,) * 3)
        draw = ImageDraw.Draw(image)
        for i, line in enumerate(lines):
            draw.text((GAP, 4 + 18 * i), line, fill=TEXT, font=head_font)
        panel_w = self.columns[0].panels.shape[2]
        for i, column in enumerate(self.columns):
            draw.multiline_text((GAP + i * (panel_w + GAP), head_h), column.title, fill=TEXT, font=title_font, spacing=2)
        return np.asarray(image)

    def row(self, frame: int) -> np.ndarray:
        """[H, W', 3] uint8: every column's panel of one frame, side by side."""
        panels = [c.panels[frame] for c in self.columns]
        h = panels[0].shape[0]
        gap = np.full((h, GAP, 3), BACKGROUND, np.uint8)
        parts = [gap]
        for panel in panels:
            parts += [panel, gap]
        return np.concatenate(parts, axis=1)

    def _stack(self, rows: list[np.ndarray]) -> np.ndarray:
        width = rows[0].shape[1]
        gap = np.full((GAP, width, 3), BACKGROUND, np.uint8)
        parts = [self._top(width)]
        for row in rows:
            parts += [row, gap]
        return np.concatenate(parts, axis=0)

    def grid(self) -> np.ndarray:
        """[H, W, 3] uint8: one row per frame, one column per block panel (the PNG)."""
        return self._stack([self.row(t) for t in range(self.num_frames)])

    def animation(self) -> list[np.ndarray]:
        """One [H, W, 3] uint8 image per frame, each with the header (the GIF or MP4)."""
        return [self._stack([self.row(t)]) for t in range(self.num_frames)]


def draw(frames: np.ndarray, maps: Sequence[BlockMap], geometry: Geometry, header: Sequence[str]) -> Picture:
    """Frames [T, H, W, 3] in [0, 1] and the block maps of that clip -> the Picture."""
    frames = geometry.enlarge(frames)
    picture = Picture(list(header), [Column("frames", (frames * 255).round().astype(np.uint8))])
    for item in maps:
        picture.columns += block_columns(frames, item, geometry)
    return picture
