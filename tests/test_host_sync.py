"""No op that waits for the device in a reduced forward of a fixed-schedule reducer (issue 28).

On a GPU, one `.item()`, `bool()` of a tensor, `nonzero`, boolean mask or `.tolist()` per block makes a
reduced model host-bound and slower than the full-token one. videotok.opcount counts those ops on any
machine; here every fixed-schedule reducer, in every active setting of tests/reducer_cases.py, runs an
eval forward on tiny TimeSformer (divided attention, merged tokens placed by their patches) and ViViT
(joint) models and must dispatch none. rlt, whose token count follows the content, is left out: it
may read its count once per forward.
"""
from __future__ import annotations

import pytest
import torch

from reducer_cases import CASES
from videotok.layers.block import Block
from videotok.models import create_model
from videotok.opcount import count_ops
from videotok.reduce import build_reducer

FIXED_SCHEDULE = ("tome", "random", "evit", "crucial_merge", "cross_frame", "vid_tldr", "pool", "semantic")
BACKBONES = ("timesformer_tiny", "vivit_tiny")
CASES_RUN = [
    pytest.param(backbone, name, setting.args, id=f"{backbone}-{name}-{setting.label()}")
    for backbone in BACKBONES
    for name in FIXED_SCHEDULE
    for setting in CASES[name].active
    if backbone not in setting.unsupported
]


@pytest.fixture(autouse=True)
def accelerator_path(monkeypatch) -> None:
    """Placement as it runs off the CPU (on a CPU it reads the exact frame width: a host read costs
    nothing there and padding does)."""
    from videotok.layers import placement

    monkeypatch.setattr(placement, "SYNC_FREE_ON_CPU", True)


def _count(model: torch.nn.Module, video: torch.Tensor, inference: bool):
    context = torch.inference_mode() if inference else torch.no_grad()
    with context, count_ops() as count:
        model(video)
    return count


@pytest.mark.parametrize("backbone, name, args", CASES_RUN)
def test_fixed_schedule_forward_never_waits_for_the_device(backbone: str, name: str, args: dict) -> None:
    torch.manual_seed(0)
    model = create_model(backbone, reducer=build_reducer(name, **args), num_classes=5).eval()
    video = torch.randn(2, 3, model.num_frames, model.img_size, model.img_size)
    count = _count(model, video, inference=True)
    assert count.total_syncs == 0, f"{name} {args} on {backbone}: {dict(count.syncs)}"


def test_placed_divided_attention_is_counted_and_sync_free(monkeypatch) -> None:
    """The divided blocks really run on placed tokens in these forwards (the path the test above
    guards), and the counter does see a sync where one happens."""
    calls = []
    original = Block._divided_placed
    monkeypatch.setattr(Block, "_divided_placed", lambda self, *a: calls.append(1) or original(self, *a))
    model = create_model("timesformer_tiny", reducer=build_reducer("evit", keep_rate=0.7), num_classes=5).eval()
    video = torch.randn(2, 3, model.num_frames, model.img_size, model.img_size)
    for inference in (True, False):  # item() dispatches differently under inference_mode
        count = _count(model, video, inference)
        assert calls and count.total_syncs == 0, dict(count.syncs)
    with count_ops() as seen:
        bool(video.sum() > 0)
        video[video > 0]
        video.flatten()[:3].tolist()
    assert seen.total_syncs == 3, dict(seen.syncs)


def test_the_layout_is_static_off_the_cpu_and_exact_on_it(monkeypatch) -> None:
    """Fixed schedules build their Layout without a sync on an accelerator; on a CPU, unless asked,
    they read the exact frame width (no padding work); rlt's padded tokens read it everywhere."""
    from videotok.layers import placement

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert placement.static_layout(False, cuda) and not placement.static_layout(True, cuda)
    monkeypatch.setattr(placement, "SYNC_FREE_ON_CPU", False)
    assert not placement.static_layout(False, cpu)
    monkeypatch.setattr(placement, "SYNC_FREE_ON_CPU", True)
    assert placement.static_layout(False, cpu) and not placement.static_layout(True, cpu)
