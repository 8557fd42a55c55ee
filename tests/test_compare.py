"""`videotok compare`: the pipeline on the tiny synthetic set, its resumption, its early errors and
the embedded default config."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
import yaml

from videotok.cli import main
from videotok.compare import Comparison, load_default_config, prepare, run_compare
from videotok.compare import runner
from videotok.config import load_config
from videotok.flops import measure_cost
from videotok.models import create_model
from videotok.reduce import build_reducer
from videotok.settings import resolve_model_settings

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = {"tome", "evit", "random", "pool", "semantic", "crucial_merge", "cross_frame"}
TOME = {"r": 16}


def tiny_config(data_dir: Path, datamodule_kwargs: dict, run_dir: Path) -> dict:
    """One epoch of the tiny TimeSformer on the fixture set; one training-free row, one fine-tuned."""
    return {
        "data": {**datamodule_kwargs, "data_dir": str(data_dir), "train_scale": list(datamodule_kwargs["train_scale"]),
                 "val_views": [1, 1], "test_views": [2, 3]},
        "model": {"model": "timesformer_tiny", "lr": 0.001, "warmup_epochs": 0.0},
        "trainer": {"accelerator": "cpu", "devices": 1, "max_epochs": 1, "log_every_n_steps": 1},
        "compare": {
            "split": "test", "views": [2, 3], "aggregate": "softmax", "run_dir": str(run_dir),
            "finetune_epochs": 1, "torch_threads": 1,
            "strategies": [
                {"name": "tome_r16", "reducer": "tome", "reducer_args": TOME},
                {"name": "crucial_fused", "reducer": "crucial_merge",
                 "reducer_args": {"keep_rate": 0.7, "layers": "1,3", "fusion": True}},
            ],
        },
    }


def _record_fits_and_passes(monkeypatch) -> tuple[list, list]:
    """Lists that collect, as a comparison runs, the folder of every training and the rows of every pass."""
    fits, passes = [], []
    original_fit = Comparison._fit
    monkeypatch.setattr(Comparison, "_fit", lambda self, *a, **k: fits.append(a[1]) or original_fit(self, *a, **k))
    original_pass = runner.run_pass
    monkeypatch.setattr(runner, "run_pass", lambda rows, *a, **k: passes.append(rows) or original_pass(rows, *a, **k))
    return fits, passes


def test_compare_trains_once_evaluates_all_and_resumes(
    tmp_path, synthetic_data_dir, synthetic_datamodule_kwargs, monkeypatch, restore_threads
):
    run_dir = tmp_path / "run"
    config = tiny_config(synthetic_data_dir, synthetic_datamodule_kwargs, run_dir)
    settings = prepare(config)
    assert [s.trained for s in settings.strategies] == ["training-free", "fine-tuned"]

    fits, passes = _record_fits_and_passes(monkeypatch)
    outcome = run_compare(config, settings, progress=False, log=lambda _: None)
    assert fits == [run_dir / "baseline", run_dir / "crucial_fused"]  # baseline once, the fused row fine-tuned
    # One evaluation pass for the three rows; the training-free row runs the baseline's weights (no
    # copy) with its own reducer, the fine-tuned row its own weights.
    assert len(passes) == 1 and [row.name for row in passes[0]] == ["baseline", "tome_r16", "crucial_fused"]
    baseline_row, tome_row, fused_row = passes[0]
    assert tome_row.model is baseline_row.model and tome_row.reducer.name == "tome"
    assert fused_row.model is not baseline_row.model and fused_row.reducer is None
    assert not (run_dir / "pass").exists()  # the pass's flushed results, removed once the rows were saved

    for name in ("report", "csv", "json", "gflops_plot", "speed_plot"):
        assert outcome.paths[name].is_file() and outcome.paths[name].parent == run_dir
    for name in ("gflops_plot", "speed_plot"):
        assert outcome.paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["baseline", "tome_r16", "crucial_fused"]
    assert [r["trained"] for r in rows] == ["trained", "training-free", "fine-tuned"]
    assert float(rows[0]["delta_video_top1"]) == 0.0 and float(rows[0]["speedup"]) == pytest.approx(1.0)
    assert all(r["pareto_gflops"] in ("true", "false") and r["pareto_speed"] in ("true", "false") for r in rows)
    assert "true" in {r["pareto_gflops"] for r in rows} and "true" in {r["pareto_speed"] for r in rows}
    data = json.loads((run_dir / "results.json").read_text())
    assert [r["name"] for r in data["rows"]] == ["baseline", "tome_r16", "crucial_fused"]
    assert data["meta"]["videos"] == 12 and data["meta"]["views"] == [2, 3]
    report = (run_dir / "report.md").read_text()
    assert report.index("none (baseline)") < report.index("| tome |") < report.index("| crucial_merge |")
    assert data["meta"]["video_list_hash"] in report and "accuracy_vs_gflops.png" in report
    assert "(accuracy_vs_clips_per_second.png)" in report and "| Pareto front |" in report
    per_class = report.split("## Per-class changes against the baseline")[1]
    assert "| tome | r=16 | " in per_class and "| crucial_merge | " in per_class
    assert all(len(r["per_class_delta"]) == 6 for r in data["rows"])

    # The table's blank-clip GFLOPs are what `videotok flops` measures for the same settings and weights;
    # global merges leave frames with unequal token counts, and the padded spatial attention follows
    # them, so the mean over the test views differs (checked view by view in test_evaluate_cost.py).
    settings = resolve_model_settings(config)
    name, overrides = settings.model, settings.backbone_overrides()
    trained = torch.load(run_dir / "baseline" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    weights = {k.removeprefix("model."): v for k, v in trained["state_dict"].items() if k.startswith("model.")}
    for row, reducer in ((0, build_reducer("none")), (1, build_reducer("tome", **TOME))):
        model = create_model(name, reducer=reducer, num_classes=6, **overrides)
        model.load_state_dict(weights)
        expected = measure_cost(model).gflops
        assert float(rows[row]["gflops_blank"]) == pytest.approx(expected, rel=1e-5)
    assert outcome.table[1].gflops_blank == expected  # exact before CSV rounding
    assert outcome.table[0].gflops_per_view == pytest.approx(outcome.table[0].gflops_blank, rel=1e-9)  # the grid
    assert outcome.table[1].gflops_per_view != pytest.approx(expected, rel=1e-6)  # the content moved it
    assert f"(blank {expected:.4f})" in report
    assert outcome.table[1].gflops_per_view < 0.8 * outcome.table[0].gflops_per_view  # 0.71x measured
    # Fusion adds parameters: more params than the baseline; every row saw every test video.
    assert outcome.table[2].params_m > outcome.table[0].params_m
    assert all(r.result.videos_evaluated == 12 and r.result.views_evaluated == 72 for r in outcome.rows)

    # A rerun loads every finished row: nothing trains, nothing is evaluated, result files untouched.
    results = sorted(run_dir.glob("*/result.json"))
    assert len(results) == 3
    stamps = {p: p.stat().st_mtime_ns for p in results}
    monkeypatch.setattr(Comparison, "_fit", lambda *a, **k: pytest.fail("a finished row was trained again"))
    monkeypatch.setattr(runner, "run_pass", lambda *a, **k: pytest.fail("evaluated again"))
    again = run_compare(config, prepare(config), progress=False, log=lambda _: None)
    assert all(row.loaded for row in again.rows)
    assert {p: p.stat().st_mtime_ns for p in results} == stamps
    assert [r.video_top1 for r in again.table] == [r.video_top1 for r in outcome.table]
    # --only computes a subset; rows finished earlier stay in the report.
    subset = run_compare(config, prepare(config, only=["tome_r16"]), progress=False, log=lambda _: None)
    assert [r.name for r in subset.rows] == ["baseline", "tome_r16", "crucial_fused"]

    # Other training settings must not silently reuse these weights: stop before any work.
    config["trainer"]["max_epochs"] = 2
    with pytest.raises(ValueError, match="trained with other settings"):
        run_compare(config, prepare(config), progress=False, log=lambda _: None)


def test_other_views_reevaluate_without_retraining(
    tmp_path, synthetic_data_dir, synthetic_datamodule_kwargs, monkeypatch, restore_threads
):
    config = tiny_config(synthetic_data_dir, synthetic_datamodule_kwargs, tmp_path / "run")
    config["compare"]["strategies"] = config["compare"]["strategies"][:1]
    run_compare(config, prepare(config), progress=False, log=lambda _: None)
    config["compare"]["views"] = [1, 1]
    monkeypatch.setattr(Comparison, "_fit", lambda *a, **k: pytest.fail("the baseline was trained again"))
    outcome = run_compare(config, prepare(config), progress=False, log=lambda _: None)
    assert not any(row.loaded for row in outcome.rows)
    assert all(row.result.views == (1, 1) and row.result.views_evaluated == 12 for row in outcome.rows)


@pytest.mark.parametrize("section, value, message", [
    ("model", {"model": "timesformer_tiny", "lrr": 0.1}, r"model: unknown options \['lrr'\]"),
    ("finetune", {"reducer": "tome"}, r"compare.finetune: \['reducer'\] cannot be set"),
    ("baseline_checkpoint", "missing.ckpt", "missing.ckpt: no such file"),
    ("data", {"crop_size": 300}, "crop_size"),
])
def test_bad_options_fail_before_any_work(tmp_path, synthetic_data_dir, synthetic_datamodule_kwargs,
                                          section, value, message):
    config = tiny_config(synthetic_data_dir, synthetic_datamodule_kwargs, tmp_path / "run")
    if section in ("model", "data"):
        config[section] = {**config[section], **value}
    else:
        config["compare"][section] = value
    with pytest.raises(ValueError, match=message):
        prepare(config)


@pytest.mark.parametrize("row, views, message", [
    ({"reducer": "nope"}, [2, 3], r"strategies\[1\] \(nope\): unknown reducer 'nope'"),
    ({"reducer": "tome", "reducer_args": {"rr": 4}}, [2, 3], r"strategies\[1\] \(tome\).*rr"),
    ({"reducer": "evit", "reducer_args": {"keep_rate": 0.7, "layers": "9"}}, [2, 3], r"strategies\[1\] \(evit\)"),
    ({"name": "tome_r16", "reducer": "tome"}, [2, 3], "repeated: tome_r16"),
    ({"reducer": "pool"}, [2, 2], "compare.views"),
    ({"reducer": "pool"}, "2by3", "compare.views"),
])
def test_bad_plans_fail_before_any_work(tmp_path, synthetic_data_dir, synthetic_datamodule_kwargs, row, views, message):
    run_dir = tmp_path / "run"
    config = tiny_config(synthetic_data_dir, synthetic_datamodule_kwargs, run_dir)
    config["compare"]["strategies"][1] = row
    config["compare"]["views"] = views
    with pytest.raises(ValueError, match=message):
        prepare(config)
    assert not run_dir.exists()


def test_a_row_is_fine_tuned_only_when_its_arguments_add_parameters():
    config = load_default_config()
    config["compare"]["strategies"] = [
        {"name": "semantic_centres", "reducer": "semantic", "reducer_args": {"layer": 2}},
        {"name": "semantic_plain", "reducer": "semantic", "reducer_args": {"layer": 2, "global_centres": False}},
        {"name": "crucial_plain", "reducer": "crucial_merge", "reducer_args": {"fusion": False}},
    ]
    trained = {s.name: s.trained for s in prepare(config).strategies}
    assert trained == {"semantic_centres": "fine-tuned", "semantic_plain": "training-free",
                       "crucial_plain": "training-free"}


def test_cli_reports_bad_config_and_unknown_rows(tmp_path, capsys):
    config = load_default_config()
    config["compare"]["strategies"].append({"name": "broken", "reducer": "tome", "reducer_args": {"r": "many"}})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["compare", "--config", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    assert "(broken)" in capsys.readouterr().err
    assert main(["compare", "--only", "no_such_row", "--run-dir", str(tmp_path / "run")]) == 2
    assert "no_such_row" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_default_config_compares_every_strategy_on_the_smoke_settings():
    config = load_default_config()
    settings = prepare(config)
    assert REQUIRED <= {s.reducer for s in settings.strategies}
    trained = {s.name: s.trained for s in settings.strategies}
    assert trained["semantic_l2"] == "fine-tuned" and trained["crucial_merge_k70"] == "fine-tuned"
    assert trained["crucial_merge_k70_nofusion"] == "training-free" and trained["tome_r8"] == "training-free"
    assert settings.split == "test" and settings.views == (2, 1)  # square frames: 3 crops were 3 copies
    # Every row cuts GFLOPs by a tenth to two thirds on the tiny model (merged TimeSformer tokens keep
    # their temporal branch, so the merging rows cut 16-41 %: tome r=4 cuts least; rlt on the blank
    # clip the cost is counted on keeps a quarter of the tubelets).
    model_settings = resolve_model_settings(config)
    name, overrides = model_settings.model, model_settings.backbone_overrides()
    full = measure_cost(create_model(name, num_classes=6, **overrides)).gflops
    for s in settings.strategies:
        cost = measure_cost(create_model(name, reducer=build_reducer(s.reducer, **s.reducer_args),
                                         num_classes=6, **overrides)).gflops
        assert 0.3 * full <= cost <= 0.9 * full, s.name
    # The same model and data as the smoke experiment (its file stays the reference).
    smoke = load_config(ROOT / "configs" / "experiment" / "smoke.yaml")
    assert config["model"] == smoke["model"]
    assert config["data"] == smoke["data"]


def test_kinetics_compare_config_is_valid():
    config = load_config(ROOT / "configs" / "experiment" / "compare_k400_timesformer_base.yaml")
    settings = prepare(config)
    assert REQUIRED <= {s.reducer for s in settings.strategies}
    assert config["model"]["model"] == "timesformer_base_patch16_224"


@pytest.mark.slow
def test_default_compare_end_to_end(tmp_path, monkeypatch, restore_threads, capsys):
    """The README's `videotok compare`: generates the synthetic set, 3-7 minutes on 2 cores (README)."""
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "--no-progress"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "runs" / "compare"
    rows = list(csv.DictReader(open(run_dir / "results.csv")))
    assert rows[0]["name"] == "baseline" and REQUIRED <= {r["strategy"] for r in rows}
    assert float(rows[0]["video_top1"]) >= 97  # learned on any CPU and seed (issue 29; tests/test_default_baseline.py)
    assert json.loads((run_dir / "results.json").read_text())["meta"]["videos_evaluated"] == 240
    assert "report.md" in out and (run_dir / "accuracy_vs_gflops.png").is_file()
    assert "accuracy_vs_clips_per_second.png" in out and (run_dir / "accuracy_vs_clips_per_second.png").is_file()


def test_seeds_train_every_trained_row_once_per_seed_and_report_the_mean(
    tmp_path, synthetic_data_dir, synthetic_datamodule_kwargs, monkeypatch, restore_threads
):
    run_dir = tmp_path / "run"
    config = tiny_config(synthetic_data_dir, synthetic_datamodule_kwargs, run_dir)
    config["compare"]["seeds"] = [0, 1]
    config["compare"]["views"] = [1, 1]
    # a few steps are enough to make the seeds' weights differ; no validation
    config["trainer"].update(limit_train_batches=2, limit_val_batches=0)
    settings = prepare(config)
    assert settings.seeds == (0, 1) and settings.seed == 0
    fits, passes = _record_fits_and_passes(monkeypatch)
    outcome = run_compare(config, settings, progress=False, log=lambda _: None)

    # The baseline and the fine-tuned row trained under each seed, in its own folder; one pass for all.
    assert fits == [run_dir / "seed0" / "baseline", run_dir / "seed0" / "crucial_fused",
                    run_dir / "seed1" / "baseline", run_dir / "seed1" / "crucial_fused"]
    assert len(passes) == 1 and [row.name for row in passes[0]] == [
        f"seed{s}/{name}" for s in (0, 1) for name in ("baseline", "tome_r16", "crucial_fused")]
    by_name = {row.name: row for row in passes[0]}
    assert by_name["seed1/tome_r16"].model is by_name["seed1/baseline"].model  # its seed's baseline weights
    assert by_name["seed1/tome_r16"].model is not by_name["seed0/baseline"].model
    heads = [torch.load(run_dir / f"seed{s}" / "baseline" / "checkpoints" / "last.ckpt", map_location="cpu",
                        weights_only=False)["state_dict"]["model.head.weight"] for s in (0, 1)]
    assert not torch.equal(*heads)

    assert [row.name for row in outcome.rows] == ["baseline", "tome_r16", "crucial_fused"]
    for row, line in zip(outcome.rows, outcome.table):
        assert [r.extra["seed"] for r in row.results] == [0, 1]
        assert line.seeds == 2
        assert line.video_top1 == pytest.approx(sum(r.video_top1 for r in row.results) / 2)
        assert line.video_top1_low <= line.video_top1 <= line.video_top1_high
    data = json.loads((run_dir / "results.json").read_text())
    assert data["meta"]["seeds"] == [0, 1]
    assert data["rows"][1]["result_files"] == ["seed0/tome_r16/result.json", "seed1/tome_r16/result.json"]
    assert all((run_dir / f).is_file() for row in data["rows"] for f in row["result_files"])
    assert "video top-1 sd (seeds)" in (run_dir / "report.md").read_text()
    assert not (run_dir / "pass").exists()

    # A rerun loads every seed's rows; a third seed trains and evaluates only its own.
    again = run_compare(config, prepare(config), progress=False, log=lambda _: None)
    assert all(row.loaded for row in again.rows) and len(passes) == 1 and len(fits) == 4
    assert [r.video_top1 for r in again.table] == [r.video_top1 for r in outcome.table]
    config["compare"]["seeds"] = [0, 1, 2]
    more = run_compare(config, prepare(config), progress=False, log=lambda _: None)
    assert fits[4:] == [run_dir / "seed2" / "baseline", run_dir / "seed2" / "crucial_fused"]
    assert [row.name for row in passes[1]] == [f"seed2/{name}" for name in ("baseline", "tome_r16", "crucial_fused")]
    assert [line.seeds for line in more.table] == [3, 3, 3]


@pytest.mark.parametrize("compare, message", [
    ({"seeds": []}, "non-empty list of integers"),
    ({"seeds": [0, 0]}, "repeats a seed"),
    ({"seeds": [1, 2], "seed": 0}, "first of compare.seeds"),
])
def test_bad_seeds_fail_before_any_work(tmp_path, synthetic_data_dir, synthetic_datamodule_kwargs, compare, message):
    config = tiny_config(synthetic_data_dir, synthetic_datamodule_kwargs, tmp_path / "run")
    config["compare"].update(compare)
    with pytest.raises(ValueError, match=message):
        prepare(config)
