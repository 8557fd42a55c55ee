"""How many ATen ops one forward dispatches, and how many of them wait for the device, for every reducer preset.

On a GPU each ATen op is a kernel launch and each op that reads data back (`.item()`, `nonzero`, a
boolean mask, ...) stalls the host: a reduced forward that launches several times the baseline's
kernels, or waits once per block, is host-bound and slower than the full-token model in bf16 (issue 28,
DESIGN.md "Where the time goes on a GPU"). Both counts are the same on every machine, so the CPU
tracks them: this script counts them with videotok.opcount (a TorchDispatchMode) for one eval forward
of batch 2, random weights, eager, after one uncounted forward (index tensors that only the shapes
decide, and fixed plans, are built by the first forward and kept: the forward counted is what every
later forward of an evaluation dispatches; --warmup 0 counts the first), for

  TimeSformer-B 8x224  every preset of configs/reducer/ made for it (no `_vivit` suffix), and
  ViViT-B 8x224        every `_vivit` preset, plus the presets that have no ViViT variant (pool, semantic).

    python benchmarks/ops.py                       # every preset, appended to benchmarks/results/ops_<date>.md
    python benchmarks/ops.py --label before --preset configs/reducer/tome_half.yaml --detail 20
    PYTHONPATH=/work/main python benchmarks/ops.py --label main   # counts another checkout's code

The code measured is the `videotok` Python imports (PYTHONPATH first, then this checkout), so one
script measures a branch and the code it started from in the same session.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: `PYTHONPATH=<other checkout>` measures that checkout

from machine import append_result, describe_machine  # noqa: E402 (benchmarks/machine.py, beside this script)
from videotok.models import create_model  # noqa: E402
from videotok.reduce import build_reducer  # noqa: E402
from videotok.reduce.presets import load_preset  # noqa: E402



def _this_checkouts_counter():
    """videotok/opcount.py of this checkout, loaded by path, so another checkout's code (PYTHONPATH) is
    counted by the same counter even where it has none."""
    spec = importlib.util.spec_from_file_location("videotok_opcount", ROOT / "videotok" / "opcount.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.count_ops


count_ops = _this_checkouts_counter()
PRESETS = ROOT / "configs" / "reducer"
MODELS = {"timesformer_base_patch16_224": "TimeSformer-B 8x224", "vivit_base_patch16_224": "ViViT-B 8x224"}
TARGET = {"timesformer_base_patch16_224": 2.0, "vivit_base_patch16_224": 3.0}  # issue 28's ops ceilings


def presets_for(model: str, chosen: list[Path]) -> list[Path]:
    """The presets made for `model`: `_vivit` ones for ViViT; for TimeSformer the others; presets without a
    ViViT variant on both."""
    paths = chosen or sorted(PRESETS.glob("*.yaml"))
    for_vivit = [p for p in paths if p.stem.endswith("_vivit")]
    if not model.startswith("vivit"):
        return [p for p in paths if p not in for_vivit]
    with_variant = {load_preset(p)[0] for p in for_vivit}
    return for_vivit + [p for p in paths if p not in for_vivit and load_preset(p)[0] not in with_variant]


def count_forward(model_name: str, preset: Path | None, batch: int, detail: int, warmup: int) -> tuple[int, int, str]:
    """(ops, device-waiting ops, a note naming the waiting ops and, with `detail`, the most frequent ops)."""
    reducer = None
    if preset is not None:
        name, args = load_preset(preset)
        reducer = build_reducer(name, **args)
    torch.manual_seed(0)
    model = create_model(model_name, reducer=reducer, num_classes=400).eval()
    video = torch.randn(batch, 3, model.num_frames, model.img_size, model.img_size)
    with torch.inference_mode():
        for _ in range(warmup):  # shape-only index tensors and plans are built once, then kept
            model(video)
        with count_ops() as count:
            model(video)
    note = ", ".join(f"{op} x{n}" for op, n in count.syncs.most_common())
    if detail:
        note += ("; " if note else "") + "top: " + ", ".join(f"{op.removeprefix('aten.')} {n}"
                                                              for op, n in count.ops.most_common(detail))
    return count.total, count.total_syncs, note


def count_as_an_accelerator() -> None:
    """Placement takes the path it takes off the CPU (no host sync; see placement.SYNC_FREE_ON_CPU),
    where a checkout has the switch: the ops counted are what a GPU would be sent."""
    from videotok.layers import placement

    if hasattr(placement, "SYNC_FREE_ON_CPU"):
        placement.SYNC_FREE_ON_CPU = True


def main() -> None:
    count_as_an_accelerator()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", action="append", type=Path, default=[], help="preset file(s); default: all")
    parser.add_argument("--model", action="append", choices=sorted(MODELS), default=[], help="default: both")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1,
                        help="uncounted forwards first (default 1: a running evaluation's forward, caches built)")
    parser.add_argument("--label", default="", help="what code is measured (e.g. the branch), for the table title")
    parser.add_argument("--detail", type=int, default=0, help="also list the N most frequent ops per row")
    parser.add_argument("--no-record", action="store_true", help="print only, append nothing to results")
    opts = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    import videotok

    lines = [f"## {datetime.date.today().isoformat()} {opts.label}".rstrip(), "",
             f"Machine: {describe_machine()}; torch {torch.__version__}; code: `{Path(videotok.__file__).parent}`; "
             f"batch {opts.batch_size}, eval (inference_mode), eager, float32, random weights; the forward counted "
             f"follows {opts.warmup} uncounted one(s).", ""]
    for model_name in opts.model or list(MODELS):
        base, base_syncs, base_note = count_forward(model_name, None, opts.batch_size, opts.detail, opts.warmup)
        lines += [f"### {MODELS[model_name]} (target: at most {TARGET[model_name]:.1f}x the baseline's ops, "
                  "0 waiting ops)", "",
                  "| preset | ops per forward | vs baseline | ops that wait for the device | which |",
                  "|---|---:|---:|---:|---|",
                  f"| none | {base} | 1.00x | {base_syncs} | {base_note} |"]
        print(lines[-1], flush=True)
        for preset in presets_for(model_name, opts.preset):
            ops, syncs, note = count_forward(model_name, preset, opts.batch_size, opts.detail, opts.warmup)
            lines.append(f"| {preset.stem} | {ops} | {ops / base:.2f}x | {syncs} | {note} |")
            print(lines[-1], flush=True)
        lines.append("")
    text = "\n".join(lines)
    if not opts.no_record:
        out = ROOT / "benchmarks" / "results" / f"ops_{datetime.date.today().isoformat()}.md"
        append_result(out, "ATen ops per forward (issue 28)", "ops.py", text)
        print(f"appended to {out}")


if __name__ == "__main__":
    main()
