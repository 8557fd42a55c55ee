"""One folder per class (UCF-101, HMDB-51, your own footage) -> PyTorchVideo path-label CSVs.

    VIDEOS/<class name>/<any sub folders>/<video>   every video file under a class folder

Classes are the class folders in sorted order, or the order of ``--class-index`` (UCF-101's
``classInd.txt``, ``1 ApplyEyeMakeup`` per line; found automatically next to the split files).
Two ways to split:

- by seed and ratio (default): per class, the videos in sorted order are shuffled with
  ``--seed`` and the first ``--test-ratio`` go to test, the next ``--val-ratio`` to val, the rest
  to train. Same folder, seed and ratios -> same split, on any machine.
- ``--split-files TRAIN TEST`` (UCF-101's ``trainlist01.txt``/``testlist01.txt``: one
  ``Class/video.avi [label]`` per line, paths relative to VIDEOS): the lists decide; the
  class comes from the path's folder. UCF-101 has no validation list, so val.csv is the test
  list unless ``--val-ratio`` holds out part of the train list (by seed, per class).

A listed video not found at its path is looked up by file name (case-insensitively: the
UCF-101 lists spell ``HandStandPushups`` where the folder is ``HandstandPushups``), else
written to ``missing.txt``. Writes train/val/test.csv, classes.txt, missing.txt.

Exit code: 0 on success (missing videos are reported, not an error), 2 on bad input.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Optional, Sequence

from data_tools.layout import Row, walk_videos, write_classes, write_missing, write_split

SPLITS = ("train", "val", "test")


def class_folders(videos_dir: Path) -> list[str]:
    """Names of the sub folders of ``videos_dir`` that hold at least one video, sorted."""
    return sorted(d.name for d in videos_dir.iterdir()
                  if d.is_dir() and not d.name.startswith(".") and next(iter(walk_videos(d)), None))


def read_class_index(path: Path) -> list[str]:
    """Class names in the order of a ``classInd.txt`` (``<1-based index> <name>`` or ``<name>``)."""
    entries: list[tuple[int, str]] = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 2 and parts[0].isdigit():
            entries.append((int(parts[0]), parts[1]))
        elif len(parts) == 1:
            entries.append((lineno, parts[0]))
        else:
            raise ValueError(f"{path}: line {lineno}: expected '<index> <class>' or '<class>', got {line!r}")
    return [name for _, name in sorted(entries)]


def split_by_ratio(videos: dict[str, list[Path]], val_ratio: float, test_ratio: float, seed: int
                   ) -> dict[str, list[tuple[Path, str]]]:
    """Per class: shuffle the sorted videos with ``seed`` (and the class name), cut test, val, train.
    At least one video stays in train; a ratio > 0 takes at least one video when there are 3+."""
    out: dict[str, list[tuple[Path, str]]] = {s: [] for s in SPLITS}
    for name in sorted(videos):
        paths = sorted(videos[name])
        random.Random(f"{seed}/{name}").shuffle(paths)
        n_test, n_val = (_share(len(paths), r) for r in (test_ratio, val_ratio))
        cut = [("test", paths[:n_test]), ("val", paths[n_test:n_test + n_val]), ("train", paths[n_test + n_val:])]
        for split, chosen in cut:
            out[split].extend((p, name) for p in sorted(chosen))
    return out


def _share(count: int, ratio: float) -> int:
    if ratio <= 0 or count < 3:
        return 0
    return min(max(1, round(count * ratio)), count - 2)


def read_split_file(path: Path) -> list[str]:
    """The relative video paths of a UCF-101 style list (``Class/v.avi`` or ``Class/v.avi 1``)."""
    paths = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts:
            paths.append(parts[0].replace("\\", "/"))
    if not paths:
        raise ValueError(f"{path} lists no video")
    return paths


class VideoFinder:
    """A listed relative path -> the file: at that path, else by file name (case-insensitive)."""

    def __init__(self, videos_dir: Path) -> None:
        self.root = videos_dir
        self.by_name: dict[str, Path] = {}
        for path in walk_videos(videos_dir):
            self.by_name.setdefault(path.name.lower(), path)

    def find(self, relative: str) -> Optional[Path]:
        path = self.root / relative
        return path if path.is_file() else self.by_name.get(Path(relative).name.lower())


def split_by_files(videos_dir: Path, train_list: Path, test_list: Path, classes: list[str],
                   val_ratio: float, seed: int) -> tuple[dict[str, list[tuple[Path, str]]], list[str]]:
    """The official lists' videos per split (class from the path's folder), and the missing lines."""
    finder = VideoFinder(videos_dir)
    folded = {c.lower(): c for c in classes}
    listed: dict[str, list[tuple[Path, str]]] = {"train": [], "test": []}
    missing: list[str] = []
    for split, list_file in (("train", train_list), ("test", test_list)):
        for relative in read_split_file(list_file):
            folder = relative.split("/")[0] if "/" in relative else ""
            name = folded.get(folder.lower())
            if name is None:
                raise ValueError(f"{list_file}: {relative}: its folder {folder!r} is not a class "
                                 f"(classes: {', '.join(classes[:5])}, ...)")
            path = finder.find(relative)
            if path is None:
                missing.append(f"{split} {relative}")
                continue
            listed[split].append((path, name))
    out = {"train": listed["train"], "val": [], "test": listed["test"]}
    if val_ratio > 0:
        per_class: dict[str, list[Path]] = {}
        for path, name in listed["train"]:
            per_class.setdefault(name, []).append(path)
        held = split_by_ratio(per_class, val_ratio, 0.0, seed)
        out["train"], out["val"] = held["train"], held["val"]
    else:
        out["val"] = list(listed["test"])
    return out, missing


def convert(videos_dir: Path, data_dir: Path, *, val_ratio: float = 0.1, test_ratio: float = 0.1,
            seed: int = 0, split_files: Optional[tuple[Path, Path]] = None,
            class_index: Optional[Path] = None) -> dict[str, int]:
    """Write the CSVs, classes.txt and missing.txt; return the number of videos per split
    (and ``missing``)."""
    if class_index is None and split_files is not None:
        candidate = split_files[0].parent / "classInd.txt"
        class_index = candidate if candidate.is_file() else None
    classes = read_class_index(class_index) if class_index is not None else class_folders(videos_dir)
    if not classes:
        raise ValueError(f"{videos_dir}: no class folder with a video in it")
    if split_files is not None:
        splits, missing = split_by_files(videos_dir, *split_files, classes, val_ratio, seed)
    else:
        folders = {c: list(walk_videos(videos_dir / c)) for c in classes}
        absent = [c for c, paths in folders.items() if not paths]
        if absent:
            raise ValueError(f"{videos_dir}: no video for class(es) {absent[:5]} of the class list")
        splits, missing = split_by_ratio(folders, val_ratio, test_ratio, seed), []
    label = {name: i for i, name in enumerate(classes)}
    write_classes(data_dir, classes)
    for split in SPLITS:
        rows: list[Row] = [(path, label[name]) for path, name in splits[split]]
        write_split(data_dir, split, rows)
    write_missing(data_dir, missing)
    return {**{s: len(splits[s]) for s in SPLITS}, "missing": len(missing)}


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"a ratio must be in [0, 1), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_tools.folders",
        description="Write PyTorchVideo path-label CSVs (train/val/test.csv, classes.txt) from a "
        "folder with one sub folder per class (UCF-101, HMDB-51, your own videos), split by seed "
        "and ratio or by official split files (UCF-101 trainlist01.txt/testlist01.txt).",
    )
    p.add_argument("--videos", type=Path, required=True, help="folder with one sub folder per class")
    p.add_argument("--data-dir", type=Path, required=True,
                   help="output folder for the CSVs; CSV paths are relative to it")
    p.add_argument("--val-ratio", type=_ratio, default=None,
                   help="share of each class for val (default 0.1; with --split-files 0: val = test list)")
    p.add_argument("--test-ratio", type=_ratio, default=0.1,
                   help="share of each class for test (default %(default)s; ignored with --split-files)")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed of the split (default %(default)s)")
    p.add_argument("--split-files", type=Path, nargs=2, metavar=("TRAIN_LIST", "TEST_LIST"),
                   help="official lists, e.g. ucfTrainTestlist/trainlist01.txt testlist01.txt")
    p.add_argument("--class-index", type=Path, default=None,
                   help="class order file (classInd.txt); default: next to the split files, else "
                   "the sorted folder names")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.videos.is_dir():
        print(f"error: --videos {args.videos} is not a folder", file=sys.stderr)
        return 2
    for path in [*(args.split_files or ()), *([args.class_index] if args.class_index else [])]:
        if not path.is_file():
            print(f"error: {path} is not a file", file=sys.stderr)
            return 2
    val_ratio = args.val_ratio if args.val_ratio is not None else (0.0 if args.split_files else 0.1)
    if args.split_files is None and val_ratio + args.test_ratio >= 1.0:
        print("error: --val-ratio + --test-ratio must leave videos for train", file=sys.stderr)
        return 2
    try:
        counts = convert(args.videos, args.data_dir, val_ratio=val_ratio, test_ratio=args.test_ratio,
                         seed=args.seed, split_files=tuple(args.split_files) if args.split_files else None,
                         class_index=args.class_index)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    val_note = " (= the test list)" if args.split_files and val_ratio == 0 else ""
    for split in SPLITS:
        print(f"{split}: {counts[split]} videos{val_note if split == 'val' else ''}")
    num_classes = len((args.data_dir / "classes.txt").read_text().splitlines())
    print(f"{num_classes} classes -> {args.data_dir / 'classes.txt'}")
    if counts["missing"]:
        print(f"{counts['missing']} missing videos listed in {args.data_dir / 'missing.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
