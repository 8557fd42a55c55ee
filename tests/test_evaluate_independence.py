"""A row's per-video result depends only on that video: every module a pass runs is in eval mode, and
the scores do not move with the batch a video falls in, the evaluation batch size, the flush interval
or a resume (the processes' share is checked in test_distributed_evaluate.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from videotok.data import KineticsDataModule
from videotok.evaluate import EvalRow, Runtime, run_pass
from videotok.evaluate.engine import RowOutcome
from videotok.evaluate.pass_store import PARTS, PassStore
from videotok.models import create_model
from videotok.reduce import build_reducer

DEFAULTS = Path(__file__).resolve().parents[1] / "videotok" / "defaults" / "compare.yaml"
VIEWS = (2, 1)


def _default_rows() -> dict[str, tuple[str, dict]]:
    """Every strategy of the default comparison (rlt and vid_tldr among them), by row name."""
    strategies = yaml.safe_load(DEFAULTS.read_text())["compare"]["strategies"]
    rows = {s["name"]: (s["reducer"], s.get("reducer_args", {})) for s in strategies}
    assert {"random", "rlt", "vid_tldr", "tome", "semantic"} <= {reducer for reducer, _ in rows.values()}
    return rows


@pytest.fixture(scope="module")
def baseline() -> torch.nn.Module:
    """The default comparison's backbone (timesformer_tiny, tubelet 2), random weights, at 64 px."""
    torch.manual_seed(0)
    return create_model("timesformer_tiny", num_classes=6, img_size=64, tubelet_size=2).eval()


def _rows(baseline: torch.nn.Module, train_mode_reducers: bool = False) -> list[EvalRow]:
    rows = [EvalRow("baseline", baseline)]
    for name, (reducer, args) in _default_rows().items():
        torch.manual_seed(1)  # the parameters of semantic and crucial_merge's fusion
        bound = build_reducer(reducer, **args)
        bound.bind(baseline.spec)
        rows.append(EvalRow(name, baseline, bound.train(train_mode_reducers)))
    return rows


def _datamodule(data_dir: Path, kwargs: dict, eval_batch_size: int) -> KineticsDataModule:
    return KineticsDataModule(str(data_dir), **{**kwargs, "eval_batch_size": eval_batch_size})


def _pass(rows: list[EvalRow], dm: KineticsDataModule, **store) -> dict[str, RowOutcome]:
    outcome = run_pass(rows, dm, "test", VIEWS, "softmax", Runtime(), progress=False, **store)
    return outcome.rows


def _assert_same_scores(got: dict[str, RowOutcome], expected: dict[str, RowOutcome], atol: float) -> None:
    assert list(got) == list(expected)
    for name in expected:
        a, b = got[name].records.in_order(), expected[name].records.in_order()
        assert torch.equal(a.video_index, b.video_index) and torch.equal(a.views, b.views), name
        assert torch.equal(a.top_classes, b.top_classes), name
        assert torch.equal(a.clip_hit1, b.clip_hit1), name
        difference = (a.top_scores - b.top_scores).abs().max().item()
        assert difference <= atol, f"{name}: per-video scores differ by {difference:.2e}"


@pytest.fixture(scope="module")
def whole(baseline, synthetic_data_dir, synthetic_datamodule_kwargs) -> dict:
    """An uninterrupted pass, batch 64, with the model in training mode and the rows' reducers too
    (as built): which modules ran in training mode under a row's forward, the modes after the pass."""
    torch.set_num_threads(1)
    baseline.train()
    rows = _rows(baseline, train_mode_reducers=True)
    in_training: list[str] = []

    def check(backbone, args):  # the row's reducer is in place while the backbone runs
        in_training.extend(f"{backbone.reducer.name}: {name or 'backbone'}"
                           for name, module in backbone.named_modules() if module.training)

    hook = baseline.register_forward_pre_hook(check)
    try:
        outcome = _pass(rows, _datamodule(synthetic_data_dir, synthetic_datamodule_kwargs, 64))
    finally:
        hook.remove()
    modes_after = [baseline.training] + [row.reducer.training for row in rows[1:]]
    baseline.eval()
    return {"rows": outcome, "in_training": in_training, "modes_after": modes_after}


def test_every_module_under_a_row_forward_is_in_eval_mode_and_modes_come_back(whole):
    assert not whole["in_training"], whole["in_training"][:5]
    assert all(whole["modes_after"])  # the model and every row's reducer in the mode they came in


def test_per_video_scores_do_not_depend_on_batch_size_flushes_or_resume(
    baseline, whole, tmp_path, synthetic_data_dir, synthetic_datamodule_kwargs, one_thread
):
    rows = _rows(baseline)
    for batch_size in (1, 7):  # 7 splits videos of 2 views across batches
        _assert_same_scores(_pass(rows, _datamodule(synthetic_data_dir, synthetic_datamodule_kwargs, batch_size)),
                            whole["rows"], atol=1e-5)

    store, signature = tmp_path / "pass", {"weights": "seed 0"}
    _pass(rows, _datamodule(synthetic_data_dir, synthetic_datamodule_kwargs, 5),
          store=PassStore(store), signature=signature, flush_every=1)
    parts = sorted((store / PARTS).glob("*.pt"))
    for path in parts[len(parts) // 2:]:  # as if killed halfway
        path.unlink()
    assert 0 < len(PassStore(store).load([row.name for row in rows]).done()) < 12
    resumed = _pass(rows, _datamodule(synthetic_data_dir, synthetic_datamodule_kwargs, 16),
                    store=PassStore(store), signature=signature, flush_every=3)
    _assert_same_scores(resumed, whole["rows"], atol=1e-5)
