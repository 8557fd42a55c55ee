"""Official Kinetics-400/600/700 lists + downloaded clips -> PyTorchVideo path-label CSVs.

Reads the annotation CSVs (columns ``label, youtube_id, time_start, time_end, split``; test
lists may lack ``label``), finds each clip ``{youtube_id}_{time_start:06d}_{time_end:06d}.*``
anywhere under the videos folder (flat or in per-class subfolders, whatever the folder
names), and writes into the data folder:

    train.csv val.csv test.csv   ``<path relative to data folder> <label index>`` per found clip
    classes.txt                  sorted class names (or a checkpoint's own order, ``--classes-from``);
                                 label index = line number (from 0)
    missing.txt                  ``<split> <youtube_id> <expected file name>`` per missing clip

A split without labels (e.g. Kinetics-600/700 test) is written to ``<split>_unlabeled.csv``
(paths only) instead, since the datamodule requires labels.

Exit code: 0 on success (missing clips are reported, not an error), 2 on bad input.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Optional, Sequence

from data_tools.layout import Row, index_videos, write_classes, write_missing, write_split
# Our split name -> file names used by the official releases, first match wins.
ANNOTATION_FILES = {
    "train": ("train.csv",),
    "val": ("validate.csv", "val.csv", "validation.csv"),
    "test": ("test.csv",),
}
REQUIRED_COLUMNS = ("youtube_id", "time_start", "time_end")


def clip_stem(youtube_id: str, time_start: str, time_end: str) -> str:
    """File name stem of a downloaded clip: ``{id}_{start:06d}_{end:06d}``."""
    return f"{youtube_id}_{int(float(time_start)):06d}_{int(float(time_end)):06d}"


def read_annotations(path: Path) -> list[dict[str, str]]:
    """Rows of an official annotation CSV; raises ValueError on missing columns."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = [c.strip() for c in reader.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; found {columns}")
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def find_annotation_files(annotations_dir: Path) -> dict[str, Path]:
    """Our split name -> annotation file found in ``annotations_dir``."""
    out = {}
    for split, names in ANNOTATION_FILES.items():
        for name in names:
            if (annotations_dir / name).is_file():
                out[split] = annotations_dir / name
                break
    return out


def convert(
    annotation_files: dict[str, Path], videos_dir: Path, data_dir: Path,
    class_order: Optional[Sequence[str]] = None,
) -> dict[str, dict[str, int]]:
    """Write the CSVs, classes.txt and missing.txt; return per-split found/missing counts.

    ``class_order``: the classes in a model's order (its names go to classes.txt); every
    annotated label must be one of them, compared as ``videotok.data.labels.class_key``."""
    from videotok.data.labels import class_key  # the rule evaluation compares names by

    rows = {split: read_annotations(path) for split, path in annotation_files.items()}
    labelled = {s for s, r in rows.items() if r and all(x.get("label") for x in r)}
    annotated = sorted({x["label"] for s in labelled for x in rows[s]})
    if not annotated:
        raise ValueError("no labelled split: need at least the train list with a label column")
    classes = annotated if class_order is None else list(class_order)
    keys = {class_key(name): i for i, name in enumerate(classes)}
    unknown = [name for name in annotated if class_key(name) not in keys]
    if unknown:
        raise ValueError(f"{len(unknown)} annotated classes are not among the {len(classes)} of --classes-from: "
                         f"{unknown[:5]}")
    label_index = {name: keys[class_key(name)] for name in annotated}
    videos = index_videos(videos_dir, what="clip")

    write_classes(data_dir, classes)
    counts: dict[str, dict[str, int]] = {}
    missing_lines: list[str] = []
    for split, split_rows in rows.items():
        found: list[Row] = []
        missing = 0
        for row in split_rows:
            stem = clip_stem(row["youtube_id"], row["time_start"], row["time_end"])
            path = videos.get(stem)
            if path is None:
                missing += 1
                missing_lines.append(f"{split} {row['youtube_id']} {stem}.mp4")
                continue
            found.append((path, label_index[row["label"]] if split in labelled else None))
        write_split(data_dir, split, found, labelled=split in labelled)
        counts[split] = {"found": len(found), "missing": missing, "labelled": int(split in labelled)}
    write_missing(data_dir, missing_lines)
    return counts


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_tools.kinetics",
        description="Write PyTorchVideo path-label CSVs (train/val/test.csv, classes.txt) from "
        "the official Kinetics     annotation lists and a folder of downloaded clips; missing clips "
        "are counted and listed in missing.txt.",
    )
    p.add_argument("--annotations", type=Path, required=True,
                   help="folder with train.csv, validate.csv (or val.csv), test.csv")
    p.add_argument("--videos", type=Path, default=None,
                   help="folder searched recursively for the clips (default: --data-dir)")
    p.add_argument("--data-dir", type=Path, required=True,
                   help="output folder for the CSVs; CSV paths are relative to it")
    p.add_argument("--splits", default="train,val,test",
                   help="comma-separated splits to convert (default: %(default)s)")
    p.add_argument("--classes-from", metavar="SOURCE",
                   help="label in this class order: a classes.txt-style file (one name per line) or a "
                   "published checkpoint (file, folder or hub id, as `videotok predict --pretrained`)")
    return p


def class_order_from(source: str) -> list[str]:
    """The class names of a one-per-line file, or of a published checkpoint."""
    from videotok.data.labels import read_classes

    path = Path(source)
    if path.is_file() and path.suffix in (".txt", ".csv", ""):
        return read_classes(path)
    from videotok.models.published import load_published

    return load_published(source).classes


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    videos_dir = args.videos or args.data_dir
    if not videos_dir.is_dir():
        print(f"error: --videos {videos_dir} is not a folder", file=sys.stderr)
        return 2
    found = find_annotation_files(args.annotations)
    wanted = [s.strip() for s in args.splits.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in ANNOTATION_FILES]
    if unknown:
        print(f"error: unknown split(s) {unknown}", file=sys.stderr)
        return 2
    files = {s: found[s] for s in wanted if s in found}
    for s in wanted:
        if s not in found:
            print(f"warning: no {s} list in {args.annotations} "
                  f"(looked for {', '.join(ANNOTATION_FILES[s])})", file=sys.stderr)
    if not files:
        print(f"error: no annotation CSV in {args.annotations}", file=sys.stderr)
        return 2
    try:
        order = class_order_from(args.classes_from) if args.classes_from else None
        counts = convert(files, videos_dir, args.data_dir, class_order=order)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total_missing = sum(c["missing"] for c in counts.values())
    for split, c in counts.items():
        note = "" if c["labelled"] else f" (no labels: {split}_unlabeled.csv)"
        print(f"{split}: {c['found']} videos, {c['missing']} missing{note}")
    num_classes = len((args.data_dir / "classes.txt").read_text().splitlines())
    print(f"{num_classes} classes -> {args.data_dir / 'classes.txt'}")
    if total_missing:
        print(f"{total_missing} missing videos listed in {args.data_dir / 'missing.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
