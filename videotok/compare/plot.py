"""accuracy_vs_gflops.png: video top-1 against GFLOPs per view, one labelled point per row."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none wanted
import matplotlib.pyplot as plt  # noqa: E402

MARKERS = {"training-free": ("o", "tab:blue"), "fine-tuned": ("s", "tab:orange")}


def plot_accuracy_vs_gflops(rows: Sequence, path: Path, title: str = "", chance: Optional[float] = None) -> Path:
    """`rows`: TableRow-like (name, trained, gflops_per_view, video_top1, is_baseline); the
    baseline is a red star with a dashed line at its accuracy, so points below it lost accuracy.
    `chance`: accuracy of a random guess (%), drawn as a grey line."""
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle=":", linewidth=1.0, zorder=1, label=f"chance ({chance:.1f} %)")
    seen: set[str] = set()
    for row in rows:
        if row.is_baseline:
            ax.scatter(row.gflops_per_view, row.video_top1, marker="*", s=260, color="tab:red",
                       edgecolor="black", zorder=3, label="baseline (full tokens)")
            ax.axhline(row.video_top1, color="tab:red", linestyle="--", linewidth=0.8, zorder=1)
            ax.axvline(row.gflops_per_view, color="tab:red", linestyle=":", linewidth=0.8, zorder=1)
        else:
            marker, color = MARKERS.get(row.trained, ("^", "tab:gray"))
            ax.scatter(row.gflops_per_view, row.video_top1, marker=marker, s=60, color=color, zorder=2,
                       label=row.trained if row.trained not in seen else None)
            seen.add(row.trained)
    _label_points(ax, [("baseline" if r.is_baseline else r.name, r.gflops_per_view, r.video_top1) for r in rows])
    ax.set_xlabel("GFLOPs per view (one multiply-add = one FLOP)")
    ax.set_ylabel("video-level top-1 accuracy (%)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# Label offsets in points, tried in order until a label overlaps none placed before it.
_OFFSETS = ((6, 4), (6, -11), (-6, 4), (-6, -11), (6, 15), (6, -22), (-6, 15), (-6, -22))


def _label_points(ax, points: list[tuple[str, float, float]], fontsize: int = 8) -> None:
    """Annotate each (text, x, y), moving a label around its point when it would cover another."""
    ax.figure.canvas.draw()  # fixes the axis limits, so data -> pixel transforms are final
    scale = ax.figure.dpi / 72.0  # pixels per point
    placed: list[tuple[float, float, float, float]] = []
    for text, x, y in sorted(points, key=lambda p: (-p[2], p[1])):
        px, py = ax.transData.transform((x, y))
        width, height = 0.6 * fontsize * len(text) * scale, fontsize * 1.2 * scale
        choice = _OFFSETS[0]
        for dx, dy in _OFFSETS:
            left = px + dx * scale - (width if dx < 0 else 0)
            box = (left, py + dy * scale, left + width, py + dy * scale + height)
            if not any(_overlap(box, other) for other in placed):
                choice = (dx, dy)
                break
        dx, dy = choice
        left = px + dx * scale - (width if dx < 0 else 0)
        placed.append((left, py + dy * scale, left + width, py + dy * scale + height))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=fontsize,
                    ha="right" if dx < 0 else "left", va="bottom")


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
