"""data_tools.kinetics: official lists + clip folders -> path-label CSVs, missing clips reported."""

from __future__ import annotations

import csv
import shutil

import pytest

from data_tools import kinetics
from videotok.data import KineticsDataModule


@pytest.fixture
def kinetics_copy(synthetic_data_dir, tmp_path):
    """The synthetic set's videos (per-class folders) and official-style annotation lists."""
    videos = tmp_path / "videos"
    for split in ("train", "val", "test"):
        shutil.copytree(synthetic_data_dir / split, videos / split)
    shutil.copytree(synthetic_data_dir / "annotations", tmp_path / "annotations")
    return tmp_path


def _run(root, *extra):
    return kinetics.main(["--annotations", str(root / "annotations"), "--videos", str(root / "videos"),
                          "--data-dir", str(root / "data"), *extra])


def test_converts_and_reports_missing(kinetics_copy, synthetic_data_dir, capsys, synthetic_datamodule_kwargs):
    victim = sorted((kinetics_copy / "videos" / "train").rglob("*.mp4"))[3]
    victim.unlink()
    assert _run(kinetics_copy) == 0
    out = capsys.readouterr().out
    assert "train: 23 videos, 1 missing" in out and "val: 12 videos, 0 missing" in out
    data = kinetics_copy / "data"
    assert (data / "classes.txt").read_text() == (synthetic_data_dir / "classes.txt").read_text()
    (line,) = (data / "missing.txt").read_text().splitlines()
    youtube_id = victim.stem[:11]
    assert line == f"train {youtube_id} {victim.name}"
    classes = (data / "classes.txt").read_text().split()
    for row in (data / "train.csv").read_text().splitlines():
        rel, label = row.rsplit(" ", 1)
        assert (data / rel).is_file()
        assert (data / rel).parent.name == classes[int(label)]  # label from the annotation
    dm = KineticsDataModule(str(data), **synthetic_datamodule_kwargs)
    dm.setup("fit")  # the output is a valid data_dir
    assert len(dm.videos("train")) == 23


def test_flat_folder_and_unlabelled_test(kinetics_copy, capsys):
    flat = kinetics_copy / "videos_flat"
    flat.mkdir()
    for p in (kinetics_copy / "videos").rglob("*.mp4"):
        shutil.move(p, flat / p.name)
    shutil.rmtree(kinetics_copy / "videos")
    flat.rename(kinetics_copy / "videos")
    test_list = kinetics_copy / "annotations" / "test.csv"  # Kinetics-700 style: no label column
    rows = list(csv.DictReader(test_list.open()))
    with test_list.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["youtube_id", "time_start", "time_end", "split"])
        for r in rows:
            w.writerow([r["youtube_id"], f"{float(r['time_start']):.1f}", r["time_end"], "test"])
    assert _run(kinetics_copy) == 0
    data = kinetics_copy / "data"
    assert len((data / "train.csv").read_text().splitlines()) == 24
    assert not (data / "test.csv").exists()
    unlabelled = (data / "test_unlabeled.csv").read_text().splitlines()
    assert len(unlabelled) == 12 and all(" " not in line for line in unlabelled)
    assert "no labels: test_unlabeled.csv" in capsys.readouterr().out


def test_bad_inputs(tmp_path, capsys):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "train.csv").write_text("label,time_start\nx,1\n")
    (tmp_path / "v").mkdir()
    args = ["--annotations", str(tmp_path / "ann"), "--videos", str(tmp_path / "v"),
            "--data-dir", str(tmp_path / "d")]
    assert kinetics.main(args) == 2
    assert "missing column(s) ['youtube_id', 'time_end']" in capsys.readouterr().err
    assert kinetics.main(["--annotations", str(tmp_path), "--videos", str(tmp_path / "nope"),
                          "--data-dir", str(tmp_path / "d")]) == 2
    with pytest.raises(SystemExit) as info:
        kinetics.main(["--help"])
    assert info.value.code == 0


def test_clip_stem():
    assert kinetics.clip_stem("abc", "5.0", "15") == "abc_000005_000015"


def test_classes_from_writes_a_models_class_order(kinetics_copy, synthetic_data_dir):
    """--classes-from: labels follow a model's order (names matched across spellings); classes the
    model lacks stop the conversion naming them."""
    annotated = (synthetic_data_dir / "classes.txt").read_text().split()
    order = [name.upper().replace("_", " ") for name in reversed(annotated)] + ["an extra class"]
    (kinetics_copy / "order.txt").write_text("\n".join(order) + "\n")
    assert _run(kinetics_copy, "--classes-from", str(kinetics_copy / "order.txt")) == 0
    data = kinetics_copy / "data"
    assert (data / "classes.txt").read_text().splitlines() == order
    for row in (data / "train.csv").read_text().splitlines():
        rel, label = row.rsplit(" ", 1)
        assert order[int(label)] == (data / rel).parent.name.upper().replace("_", " ")
    (kinetics_copy / "short.txt").write_text("\n".join(order[:2]) + "\n")
    assert _run(kinetics_copy, "--classes-from", str(kinetics_copy / "short.txt")) == 2
