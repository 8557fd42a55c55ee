"""Why short CPU attention runs as matmuls (videotok.layers.attention.attend): torch's softmax over
the last axis, and the CPU flash-attention kernel built on it, against an exp-normalise, by key count.

For each key count N it times, on one thread, a softmax over [192, N, N] (3 heads of 64 frames:
the tiny TimeSformer's spatial attention at 64 clips' worth of frames) and one attention
[64, 3, N, 32] through `F.scaled_dot_product_attention` and through `attend` (which picks matmuls
below SHORT_KEYS keys), in microseconds, the median of 50 calls after 10.

    python benchmarks/attention_kernels.py

Results are appended to benchmarks/results/attention_kernels.md with the machine and date.
"""
from __future__ import annotations

import datetime
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from machine import append_result, describe_machine  # noqa: E402 (benchmarks/machine.py, beside this script)
from videotok.layers.attention import SHORT_KEYS, attend  # noqa: E402

KEYS = (4, 8, 12, 15, 16, 17, 24, 32, 48, 64)


def microseconds(call, repeats: int = 50) -> float:
    for _ in range(10):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def main() -> int:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    lines = [f"## {datetime.date.today()}", "",
             f"- machine: {describe_machine()}; torch {torch.__version__}, 1 thread; "
             f"CPU capability {torch.backends.cpu.get_cpu_capability()}; SHORT_KEYS = {SHORT_KEYS}", "",
             "| keys | softmax [192, N, N] | exp-normalise | SDPA [64, 3, N, 32] | SDPA with a float mask | attend with the mask |",
             "|---:|---:|---:|---:|---:|---:|"]
    with torch.inference_mode():
        for n in KEYS:
            logits = torch.randn(192, n, n)
            q, k, v = torch.randn(3, 64, 3, n, 32).unbind(0)
            mask = torch.zeros(64, 1, 1, n)

            def normalise() -> torch.Tensor:
                e = (logits - logits.amax(-1, keepdim=True)).exp()
                return e / e.sum(-1, keepdim=True)

            cells = [microseconds(lambda: logits.softmax(-1)), microseconds(normalise),
                     microseconds(lambda: F.scaled_dot_product_attention(q, k, v)),
                     microseconds(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)),
                     microseconds(lambda: attend(q, k, v, mask))]
            lines.append(f"| {n} | " + " | ".join(f"{c:.0f}" for c in cells) + " |")
            print(lines[-1], flush=True)
    append_result(ROOT / "benchmarks" / "results" / "attention_kernels.md",
                  "Short attention on a CPU: softmax and SDPA against matmuls (microseconds)",
                  "attention_kernels.py", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
