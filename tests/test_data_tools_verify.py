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
    assert set(broken) == {str(folder / n) for n in names[1:]}
    assert "cannot open" in broken[str(folder / "truncated.mp4")]
    assert "missing file" in broken[str(folder / "missing.mp4")]
    assert "empty file" in broken[str(folder / "empty.mp4")]
    assert "unsupported extension" in broken[str(folder / "video.txt")]
    assert "5 of 6 videos unreadable" in out
    assert cleaned.read_text() == "good.mp4 0\n"


def test_all_good_exits_zero(synthetic_data_dir, capsys):
    assert verify.main([str(synthetic_data_dir / "val.csv"), "--workers", "1"]) == 0
    assert "0 of 12 videos unreadable with decord" in capsys.readouterr().out


def test_usage_errors(tmp_path):
    assert verify.main([str(tmp_path / "nope.csv")]) == 2
    with pytest.raises(SystemExit) as info:
        verify.main(["--help"])
    assert info.value.code == 0
