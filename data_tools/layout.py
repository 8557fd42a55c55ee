"""The data folder every ``data_tools`` converter writes, and how they find videos on disk.

    DATA_DIR/train.csv val.csv test.csv   ``<path relative to DATA_DIR> <label>`` per video
    DATA_DIR/classes.txt                  one class name per line; label index = line number
    DATA_DIR/missing.txt                  one line per listed video not found (tool-specific)
    DATA_DIR/<split>_unlabeled.csv        paths only, for a split without labels

Finding videos is the one place where an extension matters: a folder of clips also holds
annotation files, thumbnails and partial downloads, so a scan keeps the files whose extension
is a container FFmpeg reads (``VIDEO_EXTENSIONS``, broad on purpose). The data module itself
never looks at extensions: it opens whatever a CSV lists.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
import sys
from pathlib import Path
from typing import Optional

VIDEO_EXTENSIONS = (
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".flv", ".f4v", ".wmv", ".asf", ".mpg",
    ".mpeg", ".m1v", ".m2v", ".ts", ".m2ts", ".mts", ".vob", ".3gp", ".3g2", ".ogv", ".ogg",
    ".rm", ".rmvb", ".nut", ".dv", ".mxf", ".gif", ".swf", ".y4m", ".divx", ".xvid",
)

Row = tuple[Path, Optional[int]]
"""A video of a split: its absolute path and its label (None: the split has no labels)."""


def is_video_name(name: str) -> bool:
    """A visible file with a video container's extension (case-insensitive)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def walk_videos(root: Path) -> Iterable[Path]:
    """Every video file under ``root``, in a deterministic (sorted) order."""
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if is_video_name(name):
                yield Path(folder) / name


def index_videos(videos_dir: Path, what: str = "video") -> dict[str, Path]:
    """Every video under ``videos_dir`` by file stem; a stem found more than once keeps its first
    file, and a warning names such stems (``what``: the noun for one, e.g. "clip")."""
    found: dict[str, Path] = {}
    dupes: list[str] = []
    for path in walk_videos(videos_dir):
        if path.stem in found:
            dupes.append(path.stem)
            continue
        found[path.stem] = path
    if dupes:
        print(f"warning: {len(dupes)} {what}(s) found more than once, using the first: "
              f"{', '.join(dupes[:5])}", file=sys.stderr)
    return found


def write_classes(data_dir: Path, classes: Sequence[str]) -> Path:
    """``classes.txt``; refuses names the one-per-line format cannot hold."""
    bad = [c for c in classes if not c.strip() or "\n" in c or c != c.strip()]
    if bad:
        raise ValueError(f"class names must be non-empty single lines without outer spaces: {bad[:5]}")
    if len(set(classes)) != len(classes):
        raise ValueError("class names repeat: " + ", ".join(sorted({c for c in classes if list(classes).count(c) > 1})))
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "classes.txt"
    path.write_text("".join(f"{c}\n" for c in classes))
    return path


def write_split(data_dir: Path, split: str, rows: Sequence[Row], labelled: bool = True) -> Path:
    """``<split>.csv`` (``path label``), or with ``labelled=False`` ``<split>_unlabeled.csv``
    (paths only: the data module needs labels); paths relative to ``data_dir``. Returns the file."""
    if labelled and any(label is None for _, label in rows):
        raise ValueError(f"split {split}: a video without a label in a labelled split")
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for path, label in rows:
        rel = os.path.relpath(path, data_dir)
        lines.append(f"{rel} {label}\n" if labelled else f"{rel}\n")
    out = data_dir / (f"{split}.csv" if labelled else f"{split}_unlabeled.csv")
    out.write_text("".join(lines))
    return out


def write_missing(data_dir: Path, lines: Sequence[str]) -> Path:
    """``missing.txt``: one line per listed video that was not found (empty file if none)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "missing.txt"
    path.write_text("".join(f"{line.rstrip()}\n" for line in lines))
    return path


__all__ = [
    "Row",
    "VIDEO_EXTENSIONS",
    "index_videos",
    "is_video_name",
    "walk_videos",
    "write_classes",
    "write_missing",
    "write_split",
]
