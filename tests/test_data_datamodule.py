"""KineticsDataModule end to end: batches, synthetic generation, and a Lightning run."""

from __future__ import annotations

import json
import shutil
import warnings
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch

import data_tools.synthetic as synthetic
from videotok.data import KineticsDataModule

TINY = dict(train_per_class=2, val_per_class=1, test_per_class=1)


def test_train_batch_contract(synthetic_data_dir, synthetic_datamodule_kwargs):
    dm = KineticsDataModule(str(synthetic_data_dir), **synthetic_datamodule_kwargs)
    assert dm.num_classes == 6
    assert dm.classes == sorted(dm.classes) and dm.classes[0] == "blue_down"
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"video", "label", "video_index", "view_index", "skipped", "fallbacks"}
    assert batch["video"].shape == (4, *dm.video_shape) == (4, 3, 8, 64, 64)
    assert batch["label"].dtype == torch.long and batch["label"].shape == (4,)
    assert batch["view_index"].tolist() == [0, 0, 0, 0]
    assert batch["skipped"] == []
    # normalised: roughly zero-centred, unit-ish spread
    assert -1.5 < batch["video"].mean() < 1.5 and 0.2 < batch["video"].std() < 2.0
    # the label is the CSV's label of that row
    for vi, label in zip(batch["video_index"].tolist(), batch["label"].tolist()):
        assert dm.videos("train")[vi][1]["label"] == label
        assert dm.video_path("train", vi).endswith(".mp4")


def test_synthetic_true_generates_once(tmp_path, monkeypatch, synthetic_datamodule_kwargs):
    calls = []
    real = synthetic.generate_synthetic

    def tiny(out_dir, **kwargs):
        calls.append(out_dir)
        return real(out_dir, **TINY, workers=1)

    monkeypatch.setattr(synthetic, "generate_synthetic", tiny)
    data = tmp_path / "fresh"
    dm = KineticsDataModule(str(data), synthetic=True, **synthetic_datamodule_kwargs)
    assert dm.num_classes == 6  # works before prepare_data: models can link num_classes
    dm.prepare_data()
    dm.setup("fit")
    assert len(calls) == 1  # CSVs now exist: not generated again
    assert len(dm.videos("train")) == 6 * TINY["train_per_class"]


def test_synthetic_true_replaces_a_set_an_older_generator_wrote(tmp_path, monkeypatch, synthetic_datamodule_kwargs):
    """A data/synthetic left by an earlier release is not what the defaults generate now (issue 29
    changed speeds and the test split): it is regenerated; a current set, whatever its parameters, is kept."""
    calls = []
    real = synthetic.generate_synthetic

    def tiny(out_dir, **kwargs):
        calls.append(out_dir)
        return real(out_dir, **TINY, workers=1)

    data = real(tmp_path / "old", **TINY, workers=1)
    manifest = json.loads((data / "synthetic.json").read_text())
    monkeypatch.setattr(synthetic, "generate_synthetic", tiny)
    KineticsDataModule(str(data), synthetic=True, **synthetic_datamodule_kwargs).prepare_data()
    assert calls == []  # written by this generator: kept
    manifest["params"]["version"] = synthetic.MANIFEST_VERSION - 1
    (data / "synthetic.json").write_text(json.dumps(manifest))
    assert synthetic.is_outdated(data)
    KineticsDataModule(str(data), synthetic=True, **synthetic_datamodule_kwargs).prepare_data()
    assert len(calls) == 1 and not synthetic.is_outdated(data)


def test_horizontal_flip_refused_for_left_right(synthetic_data_dir, tmp_path, synthetic_datamodule_kwargs):
    data = tmp_path / "lr"
    shutil.copytree(synthetic_data_dir, data, ignore=shutil.ignore_patterns("*.mp4"))
    manifest = json.loads((data / "synthetic.json").read_text())
    manifest["params"]["directions"] = ["left", "right"]
    (data / "synthetic.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="horizontal_flip"):
        KineticsDataModule(str(data), **synthetic_datamodule_kwargs).setup("fit")
    KineticsDataModule(str(data), horizontal_flip=False, **synthetic_datamodule_kwargs).setup("fit")


class _Probe(L.LightningModule):
    """Smallest classifier; records what the data gave it."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.head = torch.nn.Linear(3, num_classes)
        self.train_order: dict[int, list[int]] = {}
        self.test_views: Counter = Counter()
        self.val_videos: Counter = Counter()

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.head(video.mean(dim=(2, 3, 4)))  # [B, C, T, H, W] -> [B, C] -> logits

    def training_step(self, batch, batch_idx):
        self.trainer.datamodule.failure_tracker("train").update(batch)
        self.train_order.setdefault(self.current_epoch, []).extend(batch["video_index"].tolist())
        return torch.nn.functional.cross_entropy(self(batch["video"]), batch["label"])

    def validation_step(self, batch, batch_idx):
        self.trainer.datamodule.failure_tracker("val").update(batch)
        if not self.trainer.sanity_checking:
            self.val_videos.update(batch["video_index"].tolist())

    def test_step(self, batch, batch_idx):
        self.test_views.update(zip(batch["video_index"].tolist(), batch["view_index"].tolist()))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_fit_validate_test(synthetic_data_dir, synthetic_datamodule_kwargs):
    dm = KineticsDataModule(str(synthetic_data_dir), **synthetic_datamodule_kwargs)
    model = _Probe(dm.num_classes)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(model, datamodule=dm)
        trainer.test(model, datamodule=dm, verbose=False)
    num_train = len(dm.videos("train"))
    assert trainer.num_training_batches == num_train // 4
    assert [sorted(model.train_order[e]) for e in (0, 1)] == [list(range(num_train))] * 2
    assert model.train_order[0] != model.train_order[1]  # reshuffled per epoch
    assert model.val_videos == Counter({i: 2 for i in range(len(dm.videos("val")))})  # once per epoch
    assert dm.failure_tracker("train").attempted == num_train  # counts restart every epoch
    assert dm.failure_tracker("train").expected == num_train
    assert dm.failure_tracker("train").failed == 0
    num_test = len(dm.videos("test"))
    assert set(model.test_views.values()) == {1}
    assert sorted(model.test_views) == [(v, k) for v in range(num_test) for k in range(6)]


@pytest.mark.parametrize("preset", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "configs" / "data").glob("*.yaml")))
def test_data_presets_build_a_datamodule(preset: str, tmp_path: Path):
    """Every configs/data preset names only real options with valid values (data_dir aside)."""
    from videotok.config import load_config

    options = load_config(Path(__file__).resolve().parents[1] / "configs" / "data" / preset)["data"]
    dm = KineticsDataModule(**{**options, "data_dir": str(tmp_path), "synthetic": False})
    assert dm.decoder == options.get("decoder", "decord")
