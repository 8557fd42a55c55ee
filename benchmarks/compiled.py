"""Eager against torch.compile: TimeSformer-B (bf16 autocast on a GPU, batch 8) for the baseline and
two merging presets, each compiled as one graph (tests/test_compile.py).

    python benchmarks/compiled.py          # on a machine with a CUDA GPU; prints as it goes

Results: benchmarks/results/throughput_timesformer_b_h200_2026-12-04.md (the first compiled run,
with graph breaks, is `benchmarks/throughput.py --compile`).
"""
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from videotok.models import create_model
from videotok.reduce import build_reducer
from videotok.reduce.presets import load_preset
from videotok.flops import measure_cost
torch.manual_seed(0)
dev = torch.device("cuda")
base = create_model("timesformer_base_patch16_224", num_classes=400).eval()
rows = [("none", "none", {})] + [(p, *load_preset(str(Path(__file__).resolve().parents[1] / "configs" / "reducer" / f"{p}.yaml"))) for p in ("tome_half", "evit_half")]
models = []
for label, name, args in rows:
    m = create_model("timesformer_base_patch16_224", num_classes=400, reducer=build_reducer(name, **args)).eval()
    m.load_state_dict(base.state_dict(), strict=False, assign=True)
    print(label, "GFLOPs", round(measure_cost(m).gflops, 2), flush=True)
    models.append((label, m.to(dev)))
video = torch.randn(8, 3, 8, 224, 224, device=dev)
def timed(f, n=10):
    ts = []
    for _ in range(n):
        torch.cuda.synchronize(); s = time.perf_counter(); f(video); torch.cuda.synchronize(); ts.append(time.perf_counter() - s)
    return statistics.median(ts)
eager = {}
with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
    for label, m in models:
        m(video); m(video)
        eager[label] = (timed(m), m(video).float())
        print(f"eager {label}: {8 / eager[label][0]:.1f} clips/s", flush=True)
    for label, m in models:
        c = torch.compile(m)
        s = time.perf_counter(); out = c(video); torch.cuda.synchronize()
        print(f"compiled {label}: first call {time.perf_counter() - s:.0f} s", flush=True)
        c(video)
        sec = timed(c)
        print(f"compiled {label}: {8 / sec:.1f} clips/s ({eager[label][0] / sec:.2f}x its eager; "
              f"{eager['none'][0] / sec:.2f}x the eager baseline), max |logit diff| vs eager {(out.float() - eager[label][1]).abs().max().item():.3g}",
              flush=True)
