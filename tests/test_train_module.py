"""VideoClassifier, its optimiser recipe and the checkpoint checks, without a Trainer where possible."""
from __future__ import annotations

import math

import pytest
import torch

from videotok.train import VideoClassifier
from videotok.train.optim import parameter_groups, warmup_cosine


def tiny(**kwargs) -> VideoClassifier:
    args = dict(model="timesformer_tiny", num_classes=6, num_frames=4, img_size=32)
    return VideoClassifier(**{**args, **kwargs})


def test_no_weight_decay_on_norms_biases_embeddings_and_tokens():
    module = tiny()
    decay, no_decay = parameter_groups(module, weight_decay=0.05)
    names = {id(p): n for n, p in module.named_parameters()}
    undecayed = {names[id(p)] for p in no_decay["params"]}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {"model.cls_token", "model.pos_embed", "model.time_embed"} <= undecayed
    assert all(n.endswith("bias") or "norm" in n or "embed" in n or "token" in n for n in undecayed)
    assert "model.blocks.0.attn.qkv.weight" in decayed
    assert len(decayed) + len(undecayed) == len(list(module.parameters()))


def test_warmup_then_cosine_to_min_ratio():
    factor = warmup_cosine(total_steps=100, warmup_steps=10, min_ratio=0.01)
    assert factor(0) == pytest.approx(0.1)
    assert factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0)
    assert factor(55) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factor(100) == pytest.approx(0.01)
    values = [factor(s) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_bad_names_fail_at_construction():
    with pytest.raises(ValueError, match="optimizer='adam'.*adamw, sgd"):
        tiny(optimizer="adam")
    with pytest.raises(ValueError, match="unknown reducer 'tomee'"):
        tiny(reducer="tomee")
    with pytest.raises(ValueError, match="unknown model 'timesformer_huge'"):
        tiny(model="timesformer_huge")


def test_batch_of_only_failures_is_counted_not_computed():
    module = tiny()
    batch = {"video": torch.empty(0, 3, 4, 32, 32), "label": torch.empty(0, dtype=torch.long),
             "video_index": torch.empty(0, dtype=torch.long), "view_index": torch.empty(0, dtype=torch.long),
             "skipped": [("a.mp4", "empty file")]}
    module.log = lambda *args, **kwargs: None  # no Trainer attached
    assert module.training_step(batch, 0) is None
    assert module._tracker("train").failed == 1


def test_training_step_returns_a_loss_with_gradients():
    torch.manual_seed(0)
    module = tiny(reducer="tome", reducer_args={"r": 2})
    module.log = lambda *args, **kwargs: None
    batch = {"video": torch.randn(2, 3, 4, 32, 32), "label": torch.tensor([0, 5]),
             "video_index": torch.tensor([0, 1]), "view_index": torch.tensor([0, 0]), "skipped": []}
    loss = module.training_step(batch, 0)
    loss.backward()
    assert torch.isfinite(loss)
    assert module.model.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_checkpoint_of_another_reducer_is_refused_with_the_reason():
    trained = tiny(reducer="semantic", reducer_args={"layer": 2, "tokens": "1x2x2"})
    checkpoint = {"state_dict": trained.state_dict(), "hyper_parameters": dict(trained.hparams)}
    with pytest.raises(ValueError, match="trained with reducer='semantic'.*init_checkpoint"):
        tiny().on_load_checkpoint(checkpoint)
    tiny(reducer="tome", reducer_args={"r": 1}).on_load_checkpoint(
        {"state_dict": tiny().state_dict(), "hyper_parameters": {}})  # parameter-free: accepted


def test_init_checkpoint_starts_a_reducer_with_parameters_from_a_baseline(tmp_path):
    baseline = tiny()
    path = tmp_path / "baseline.ckpt"
    torch.save({"state_dict": baseline.state_dict()}, path)
    module = tiny(reducer="semantic", reducer_args={"layer": 2, "tokens": "1x2x2"}, init_checkpoint=str(path))
    assert torch.equal(module.model.blocks[0].attn.qkv.weight, baseline.model.blocks[0].attn.qkv.weight)


def test_videos_read_by_the_fallback_decoder_are_counted_and_named(capsys, one_thread):
    """`batch["fallbacks"]` (path, decoder, reason) from the data: `train/decoder_fallbacks` is
    the running count of the pass, `val/decoder_fallbacks` the pass's sum, each video named."""
    import lightning as L
    from torch.utils.data import DataLoader

    def batch(fallbacks: list) -> dict:
        return {"video": torch.randn(2, 3, 4, 32, 32), "label": torch.tensor([0, 1]),
                "view_index": torch.zeros(2, dtype=torch.long), "fallbacks": fallbacks}

    one = ("train/a.nut", "pyav", "decord: cannot open")
    batches = [batch([one]), batch([]), batch([("train/b.nut", "pyav", "decord: cannot open")])]
    trainer = L.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(tiny(), train_dataloaders=DataLoader(batches, batch_size=None),
                val_dataloaders=DataLoader(batches[:1], batch_size=None))
    assert trainer.callback_metrics["train/decoder_fallbacks"] == 2
    assert trainer.callback_metrics["val/decoder_fallbacks"] == 1
    assert "read by pyav train/a.nut: decord: cannot open" in capsys.readouterr().err
