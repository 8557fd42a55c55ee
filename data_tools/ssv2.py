"""Something-Something v2 annotations + its .webm folder -> PyTorchVideo path-label CSVs.

The release ships ``labels.json`` (``{"Approaching something with your camera": "0", ...}``:
the 174 class templates and their official indices), ``train.json`` and ``validation.json``
(lists of ``{"id": "78687", "template": "Holding [something] next to [something]",
"label": "holding a pen next to a cup", "placeholders": [...]}``) and ``test.json`` (ids
only), and the videos as ``<id>.webm`` in one folder. A video's class is its ``template``
with the brackets removed, looked up in ``labels.json``; ``classes.txt`` keeps the official
order, so label i here is label i in every published SSv2 result.

Writes ``train.csv`` (train.json), ``val.csv`` (validation.json), ``test.csv`` (validation.json
again unless ``--test-split none``: SSv2's test labels are not public and results are reported
on validation), ``test_unlabeled.csv`` when test.json is present, ``classes.txt`` and
``missing.txt`` (``<split> <id>`` per listed video not found).

Exit code: 0 on success (missing videos are reported, not an error), 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from data_tools.layout import Row, index_videos, write_classes, write_missing, write_split

# Our split name -> the release's annotation file.
ANNOTATION_FILES = {"train": "train.json", "val": "validation.json"}
TEST_FILE = "test.json"


def template_class(template: str) -> str:
    """The class name of a template: ``"Holding [something] next to [something]"`` ->
    ``"Holding something next to something"`` (the keys of labels.json)."""
    return template.replace("[", "").replace("]", "").strip()


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from e


def read_labels(path: Path) -> list[str]:
    """Class names in official order from labels.json (name -> index as a string or int)."""
    labels = read_json(path)
    if not isinstance(labels, dict) or not labels:
        raise ValueError(f"{path}: expected an object of class name -> index")
    try:
        by_index = {int(index): name for name, index in labels.items()}
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: an index is not an integer ({e})") from e
    if sorted(by_index) != list(range(len(labels))):
        raise ValueError(f"{path}: indices must be 0..{len(labels) - 1}, each once")
    return [by_index[i] for i in range(len(labels))]


def read_entries(path: Path, labelled: bool) -> list[dict[str, Any]]:
    """Entries of train/validation/test.json; each needs an ``id`` (and a ``template`` if labelled)."""
    entries = read_json(path)
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of videos")
    need = ("id", "template") if labelled else ("id",)
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or any(k not in entry for k in need):
            raise ValueError(f"{path}: entry {i} lacks {' or '.join(need)}: {str(entry)[:120]}")
    return entries


def convert(annotations: Path, videos_dir: Path, data_dir: Path, test_split: str = "validation"
            ) -> dict[str, dict[str, int]]:
    """Write the CSVs, classes.txt and missing.txt; return per-split found/missing counts."""
    classes = read_labels(annotations / "labels.json")
    label_index = {name: i for i, name in enumerate(classes)}
    videos = index_videos(videos_dir, what="video id")
    splits: dict[str, list[dict[str, Any]]] = {}
    for split, name in ANNOTATION_FILES.items():
        if (annotations / name).is_file():
            splits[split] = read_entries(annotations / name, labelled=True)
    if "train" not in splits:
        raise ValueError(f"{annotations}: no train.json")
    if test_split == "validation" and "val" in splits:
        splits["test"] = splits["val"]
    unlabeled = read_entries(annotations / TEST_FILE, labelled=False) if (annotations / TEST_FILE).is_file() else None

    write_classes(data_dir, classes)
    counts: dict[str, dict[str, int]] = {}
    missing_lines: list[str] = []
    for split, entries in splits.items():
        rows: list[Row] = []
        for entry in entries:
            name = template_class(str(entry["template"]))
            if name not in label_index:
                raise ValueError(f"{ANNOTATION_FILES.get(split, 'validation.json')}: video {entry['id']} has "
                                 f"template {entry['template']!r}, whose class {name!r} is not in labels.json")
            path = videos.get(str(entry["id"]))
            if path is None:
                if split != "test":  # test repeats val: report each missing video once
                    missing_lines.append(f"{split} {entry['id']}")
                continue
            rows.append((path, label_index[name]))
        write_split(data_dir, split, rows)
        counts[split] = {"found": len(rows), "missing": len(entries) - len(rows)}
    if unlabeled is not None:
        rows = [(videos[str(e["id"])], None) for e in unlabeled if str(e["id"]) in videos]
        write_split(data_dir, "test", rows, labelled=False)
        counts["test_unlabeled"] = {"found": len(rows), "missing": len(unlabeled) - len(rows)}
    write_missing(data_dir, missing_lines)
    return counts


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_tools.ssv2",
        description="Write PyTorchVideo path-label CSVs (train/val/test.csv, classes.txt in the "
        "official label order) from Something-Something v2's labels.json, train.json and "
        "validation.json and its folder of <id>.webm videos; missing videos are counted and "
        "listed in missing.txt.",
    )
    p.add_argument("--annotations", type=Path, required=True,
                   help="folder with labels.json, train.json, validation.json (test.json optional)")
    p.add_argument("--videos", type=Path, required=True,
                   help="folder searched recursively for <id>.webm (any video extension)")
    p.add_argument("--data-dir", type=Path, required=True,
                   help="output folder for the CSVs; CSV paths are relative to it")
    p.add_argument("--test-split", choices=("validation", "none"), default="validation",
                   help="what test.csv lists: the validation videos (SSv2's test labels are not "
                   "public; default) or nothing written")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for option, folder in (("--annotations", args.annotations), ("--videos", args.videos)):
        if not folder.is_dir():
            print(f"error: {option} {folder} is not a folder", file=sys.stderr)
            return 2
    if not (args.annotations / "labels.json").is_file():
        print(f"error: no labels.json in --annotations {args.annotations}", file=sys.stderr)
        return 2
    try:
        counts = convert(args.annotations, args.videos, args.data_dir, args.test_split)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split, c in counts.items():
        note = " (= validation)" if split == "test" else ""
        print(f"{split}: {c['found']} videos, {c['missing']} missing{note}")
    num_classes = len((args.data_dir / "classes.txt").read_text().splitlines())
    print(f"{num_classes} classes -> {args.data_dir / 'classes.txt'}")
    missing = len((args.data_dir / "missing.txt").read_text().splitlines())
    if missing:
        print(f"{missing} missing videos listed in {args.data_dir / 'missing.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
