"""What a benchmark result was measured on (the CPU's name, the cores this process may use, the GPU), and
the results file it is appended to."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def describe_machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{cpu}, {cores} cores{gpu}, {platform.system()} {platform.release()}"


def append_result(path: str | Path, title: str, script: str, text: str) -> None:
    """Append `text` to the markdown file `path`, starting a new file with `title` and the script
    that makes it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = "" if out.is_file() else f"# {title}\n\nMade by `benchmarks/{script}` (see its docstring).\n\n"
    with open(out, "a") as handle:
        handle.write(header + text + "\n")
