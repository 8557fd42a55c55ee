"""videotok: token reduction for video transformers, measured against the full-token baseline.

The public Python API (videotok/api.py; the command line is built on it):

    import videotok
    model = videotok.load("MCG-NJU/videomae-base-finetuned-kinetics", "tome", r=8)
    videotok.patch(hf_model, "tome", r=8)      # a transformers / timm model you already hold
    videotok.reducers(), videotok.build_reducer("evit", keep_rate=0.7)

Names are imported on first use, so `import videotok` stays light (no torch, timm or Lightning).
"""
from __future__ import annotations

from typing import Any

__all__ = ["Loaded", "build_reducer", "count_gflops", "create_model", "evaluate", "load", "load_with_details",
           "patch", "read_clip", "reducers", "set_reducer", "unpatch", "using_reducer"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":  # the package itself is callable (videotok/evaluate/__init__.py)
        import videotok.evaluate as package

        return package
    if name in __all__:
        from videotok import api

        return getattr(api, name)
    raise AttributeError(f"module 'videotok' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
