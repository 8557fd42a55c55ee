"""Class lists and PyTorchVideo path-label CSVs, checked before any video is opened.

A split file has one ``<path> <label>`` line per video (space separated, label last, so paths
may contain spaces), paths relative to the data folder: PyTorchVideo's ``LabeledVideoPaths``
format. We parse it ourselves only to say which line is wrong; the result is a
``LabeledVideoPaths`` rooted at the data folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from videotok.data.pytorchvideo_compat import LabeledVideoPaths


def read_classes(path: str | os.PathLike) -> list[str]:
    """Class names, one per non-empty line; the label index is the line's position."""
    names = [line.strip() for line in Path(path).read_text().splitlines()]
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"{path} lists no class")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{path} lists these classes more than once: {dupes}")
    return names


def read_labeled_paths(
    csv_path: str | os.PathLike,
    num_classes: int,
    root: str | os.PathLike,
    classes_path: str | os.PathLike = "classes.txt",
    max_reported: int = 10,
) -> LabeledVideoPaths:
    """Read a split file; raise ``ValueError`` naming every bad line (label, path, line number).

    Paths are joined to ``root``; labels must be integers in ``[0, num_classes)``.
    """
    pairs: list[tuple[str, int]] = []
    bad: list[str] = []
    for lineno, line in enumerate(Path(csv_path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            bad.append(f"line {lineno}: no label in {line.strip()!r}")
            continue
        rel, label_text = parts
        try:
            label = int(label_text)
        except ValueError:
            bad.append(f"line {lineno}: label {label_text!r} of {rel} is not an integer")
            continue
        if not 0 <= label < num_classes:
            bad.append(
                f"line {lineno}: label {label} of {rel} is outside the {num_classes} classes "
                f"of {classes_path} (0..{num_classes - 1})"
            )
            continue
        pairs.append((rel, label))
    if bad:
        more = f"\n  ... and {len(bad) - max_reported} more" if len(bad) > max_reported else ""
        raise ValueError(
            f"{csv_path}: {len(bad)} bad line(s):\n  " + "\n  ".join(bad[:max_reported]) + more
        )
    if not pairs:
        raise ValueError(f"{csv_path} lists no video")
    return LabeledVideoPaths(pairs, path_prefix=str(root))


def class_key(name: str) -> str:
    """A class name as compared across sources: Kinetics lists spell the same class with
    underscores or spaces, in other cases, with or without quotes."""
    return " ".join(name.strip().strip("\"'").replace("_", " ").lower().split())


def check_class_order(data_classes: list[str], data_source: str, model_classes: list[str], model_source: str,
                      fix: str = "") -> None:
    """Fail, naming both sources, unless the data's label i is the model's class i for every i
    (names compared by `class_key`). `fix`: what the user can run to rewrite the data."""
    data_keys, model_keys = [class_key(n) for n in data_classes], [class_key(n) for n in model_classes]
    if data_keys == model_keys:
        return
    hint = f" {fix}" if fix else ""
    if len(data_keys) != len(model_keys) or set(data_keys) != set(model_keys):
        unknown = [n for n, k in zip(data_classes, data_keys) if k not in set(model_keys)]
        detail = f"; not among the model's: {unknown[:5]}" if unknown else ""
        raise ValueError(f"{data_source} lists {len(data_keys)} classes, {model_source} has {len(model_keys)} "
                         f"other ones{detail}.{hint}")
    first = next(i for i, (a, b) in enumerate(zip(data_keys, model_keys)) if a != b)
    raise ValueError(f"{data_source} has the classes of {model_source} in another order: label {first} is "
                     f"{data_classes[first]!r} in the data, {model_classes[first]!r} in the model.{hint}")
