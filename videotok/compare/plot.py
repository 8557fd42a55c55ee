"""The report's plots: video top-1 against GFLOPs per view (accuracy_vs_gflops.png) and against
measured clips/s (accuracy_vs_clips_per_second.png), one labelled point per row with its 95 %
interval as an error bar, Pareto front drawn.

GFLOPs are what a reduction promises, clips/s what it delivers on the machine at hand (on a small
model the matching and merging can cost more than the tokens save), so the report shows both.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none wanted
import matplotlib.pyplot as plt  # noqa: E402

MARKERS = {"training-free": ("o", "tab:blue"), "fine-tuned": ("s", "tab:orange")}


def plot_accuracy_vs_gflops(rows: Sequence, path: Path, title: str = "", chance: Optional[float] = None) -> Path:
    """`rows`: TableRow-like (name, trained, gflops_per_view, video_top1, pareto_gflops, is_baseline)."""
    return _plot_accuracy(rows, path, "gflops_per_view", "pareto_gflops", lower_is_better=True,
                          xlabel="GFLOPs per view (one multiply-add = one FLOP)", what="GFLOPs",
                          title=title, chance=chance)


def plot_accuracy_vs_clips_per_second(rows: Sequence, path: Path, title: str = "", chance: Optional[float] = None,
                                      device: str = "") -> Path:
    """`rows`: TableRow-like (name, trained, clips_per_second, video_top1, pareto_speed, is_baseline);
    rows whose clips/s were not measured are left out and named under the axis."""
    where = f", {device}" if device else ""
    return _plot_accuracy(rows, path, "clips_per_second", "pareto_speed", lower_is_better=False,
                          xlabel=f"clips/s (model forward pass only, measured{where}; right is faster)",
                          what="clips/s", title=title, chance=chance)


def _plot_accuracy(rows: Sequence, path: Path, x: str, front: str, lower_is_better: bool, xlabel: str,
                   what: str, title: str, chance: Optional[float]) -> Path:
    """Video top-1 against the row attribute `x`. The baseline is a red star with a dashed line at its
    accuracy, so points below it lost accuracy; the rows flagged by `front` (see compare.pareto) are
    joined by a step line, the best accuracy reachable at each cost, and labelled in bold; each
    point's bar is its 95 % bootstrap interval over the test videos.
    `chance`: accuracy of a random guess (%), drawn as a grey line."""
    def drawable(row) -> bool:
        return math.isfinite(getattr(row, x)) and math.isfinite(row.video_top1)

    shown = [r for r in rows if drawable(r)]
    left_out = [("baseline" if r.is_baseline else r.name) for r in rows if not drawable(r)]
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle=":", linewidth=1.0, zorder=1, label=f"chance ({chance:.1f} %)")
    seen: set[str] = set()
    for row in shown:
        if row.is_baseline:
            ax.scatter(getattr(row, x), row.video_top1, marker="*", s=260, color="tab:red",
                       edgecolor="black", zorder=3, label="baseline (full tokens)")
            ax.axhline(row.video_top1, color="tab:red", linestyle="--", linewidth=0.8, zorder=1)
            ax.axvline(getattr(row, x), color="tab:red", linestyle=":", linewidth=0.8, zorder=1)
        else:
            marker, color = MARKERS.get(row.trained, ("^", "tab:gray"))
            ax.scatter(getattr(row, x), row.video_top1, marker=marker, s=60, color=color, zorder=2,
                       label=row.trained if row.trained not in seen else None)
            seen.add(row.trained)
    _error_bars(ax, shown, x)
    on_front = sorted((getattr(r, x), r.video_top1) for r in shown if getattr(r, front))
    if on_front:
        # Cheaper to the left: a front point's accuracy holds until the next one (post); faster to
        # the right: it holds back to the previous one (pre).
        ax.step([p[0] for p in on_front], [p[1] for p in on_front], where="post" if lower_is_better else "pre",
                color="black", linewidth=1.0, alpha=0.6, zorder=1.5, label="Pareto front")
    _label_points(ax, [("baseline" if r.is_baseline else r.name, getattr(r, x), r.video_top1, getattr(r, front))
                       for r in shown])
    if left_out:
        xlabel += f"\nleft out ({what} or accuracy n/a): {', '.join(left_out)}"
    ax.set_xlabel(xlabel)
    ax.set_ylabel("video-level top-1 accuracy (%; bars: 95 % interval)")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _error_bars(ax, rows: Sequence, x: str) -> None:
    """Each row's 95 % interval of video top-1 (`video_top1_low`/`_high`) as a vertical bar; rows
    without one (no per-video predictions) get none."""
    for row in rows:
        low, high = getattr(row, "video_top1_low", math.nan), getattr(row, "video_top1_high", math.nan)
        if not (math.isfinite(low) and math.isfinite(high)):
            continue
        color = "tab:red" if row.is_baseline else MARKERS.get(row.trained, ("^", "tab:gray"))[1]
        ax.errorbar(getattr(row, x), row.video_top1, yerr=[[max(row.video_top1 - low, 0.0)],
                                                            [max(high - row.video_top1, 0.0)]],
                    fmt="none", ecolor=color, elinewidth=0.9, capsize=3, alpha=0.7, zorder=1.8)


# Label offsets in points, tried in order until a label overlaps none placed before it.
_OFFSETS = ((6, 4), (6, -11), (-6, 4), (-6, -11), (6, 15), (6, -22), (-6, 15), (-6, -22))


def _label_points(ax, points: list[tuple[str, float, float, bool]], fontsize: int = 8) -> None:
    """Annotate each (text, x, y, bold), moving a label around its point when it would cover another."""
    ax.figure.canvas.draw()  # fixes the axis limits, so data -> pixel transforms are final
    scale = ax.figure.dpi / 72.0  # pixels per point
    placed: list[tuple[float, float, float, float]] = []
    for text, x, y, bold in sorted(points, key=lambda p: (-p[2], p[1])):
        px, py = ax.transData.transform((x, y))
        width, height = (0.65 if bold else 0.6) * fontsize * len(text) * scale, fontsize * 1.2 * scale
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
                    fontweight="bold" if bold else "normal", ha="right" if dx < 0 else "left", va="bottom")


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
