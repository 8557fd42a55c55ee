"""What `videotok fit` starts from, and says it does.

- Image weights (`--model.pretrained`): one line counting the tensors loaded, inflated and new.
- A published checkpoint on one's own classes (`--model.published` with a data folder of other
  classes): the backbone is kept, the head is new for the data's classes, and the run saves the
  data's class names; the run then evaluates, while evaluating the published head itself on those
  classes is refused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from helpers_training import run_videotok, tiny_args
from videotok.cli import main
from videotok.train.checkpoint import load_checkpoint
from videotok.train.module import CLASSES_KEY

transformers = pytest.importorskip("transformers")

LABELS = ["abseiling", "bowling", "cartwheeling", "dancing"]  # the checkpoint's 4 classes


@pytest.fixture(scope="module")
def published4(tmp_path_factory) -> Path:
    """A small transformers VideoMAE of 4 classes (4 frames of 32 px, the tiny fit's clip)."""
    config = transformers.VideoMAEConfig(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96, image_size=32,
        num_frames=4, tubelet_size=2, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)})
    folder = tmp_path_factory.mktemp("videomae-4-classes")
    transformers.VideoMAEForVideoClassification(config).eval().save_pretrained(folder)
    return folder


def test_fit_a_published_checkpoint_on_six_other_classes_then_evaluate(published4, synthetic_data_dir, tmp_path,
                                                                         capsys):
    root = tmp_path / "run"
    result = run_videotok(["fit", *tiny_args(synthetic_data_dir, root), "--model.published", str(published4),
                           "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"])
    line = next((l for l in result.stdout.splitlines() if l.startswith(f"model.published {published4}: ")), "")
    assert "tensors loaded (the backbone); new head for the data's 6 classes (head." in line, result.stdout[-2000:]
    assert "head.weight" in line and "the checkpoint's head has 4 classes and is not used" in line
    ckpt_path = root / "checkpoints" / "last.ckpt"
    saved = load_checkpoint(str(ckpt_path))
    data_classes = (synthetic_data_dir / "classes.txt").read_text().split()
    assert saved[CLASSES_KEY] == data_classes and saved["hyper_parameters"]["num_classes"] == 6
    assert saved["state_dict"]["model.head.weight"].shape == (6, 48)
    # the backbone came from the checkpoint (two small steps move it little), the head did not
    published = load_file(str(published4 / "model.safetensors"))
    start = published["videomae.embeddings.patch_embeddings.projection.weight"]
    assert (saved["state_dict"]["model.patch_embed.proj.weight"] - start).abs().max() < 0.01

    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({"model": {"published": str(published4)},
                                      "data": {"data_dir": str(synthetic_data_dir), "batch_size": 4, "num_workers": 0,
                                               "num_frames": 4, "crop_size": 32, "eval_short_side": 32}}))
    assert main(["evaluate", "--config", str(config), "--ckpt_path", str(ckpt_path), "--views", "1x1",
                 "--no-progress", "--output", str(tmp_path / "result.json")]) == 0
    evaluated = json.loads((tmp_path / "result.json").read_text())
    assert evaluated["videos_evaluated"] == 12 and [c["name"] for c in evaluated["per_class"]] == data_classes
    capsys.readouterr()
    # the published head itself is measured only on its own classes
    assert main(["evaluate", "--config", str(config), "--views", "1x1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "lists 6 classes, the published checkpoint" in err and "has 4: evaluating it measures its own head" in err


def test_fit_from_image_weights_says_what_it_loaded(synthetic_data_dir, tmp_path):
    import timm
    import torch

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=96, embed_dim=96, depth=6,
                            num_heads=3, num_classes=0)
    torch.save(vit.state_dict(), tmp_path / "vit.pth")
    result = run_videotok(["fit", *tiny_args(synthetic_data_dir, tmp_path / "run"), "--model.pretrained",
                           str(tmp_path / "vit.pth"), "--trainer.limit_train_batches", "1",
                           "--trainer.limit_val_batches", "1"])
    # timesformer_tiny, tubelet 2 at 32 px: patch kernel, positions (6x6 -> 2x2), time_embed and the
    # temporal branch of 6 blocks are inflated; temporal_fc of 6 blocks and the 6-class head are new
    assert (f"model.pretrained {tmp_path / 'vit.pth'}: 76 tensors loaded, 39 inflated, 14 new"
            in result.stdout), result.stdout[-2000:]


def test_compare_fine_tunes_a_published_baseline_on_other_classes(published4, synthetic_data_dir, tmp_path, capsys):
    """compare with model.published of 4 classes on the 6-class set: only with finetune_published,
    the baseline is fine-tuned first with a new head; the training-free rows run on it."""
    compare = {"run_dir": str(tmp_path / "run"), "views": [1, 1], "finetune_epochs": 1,
               "strategies": [{"name": "tome_r1", "reducer": "tome", "reducer_args": {"r": 1}}]}
    config = {"data": {"data_dir": str(synthetic_data_dir), "batch_size": 8, "num_workers": 0, "eval_short_side": 32,
                       "train_scale": [32, 40]},
              "trainer": {"accelerator": "cpu", "precision": "32", "log_every_n_steps": 1},
              "compare": compare}
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["compare", "--config", str(path), "--pretrained", str(published4), "--no-progress"]) == 2
    assert "has 4 classes, the data 6: compare.finetune_published: true" in capsys.readouterr().err
    compare["finetune_published"] = True
    path.write_text(yaml.safe_dump(config))
    assert main(["compare", "--config", str(path), "--pretrained", str(published4), "--no-progress"]) == 0
    assert "fine-tuning the published checkpoint on the data's classes (a new head" in capsys.readouterr().out
    rows = json.loads((tmp_path / "run" / "results.json").read_text())["rows"]
    assert [(r["name"], r["trained"]) for r in rows] == [("baseline", "fine-tuned"), ("tome_r1", "training-free")]
    assert "fine-tuned 1 epoch on these classes (a new head)" in (tmp_path / "run" / "report.md").read_text()
    assert (tmp_path / "run" / "baseline" / "checkpoints" / "last.ckpt").is_file()
