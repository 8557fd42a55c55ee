"""The precisions evaluation runs in: Lightning's names and the short ones, one table."""
from __future__ import annotations

from typing import Optional

import torch

# name -> autocast dtype (None: plain float32)
PRECISIONS: dict[str, Optional[torch.dtype]] = {
    "32": None, "32-true": None, "fp32": None,
    "bf16": torch.bfloat16, "bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16,
    "16": torch.float16, "16-mixed": torch.float16, "16-true": torch.float16, "fp16": torch.float16,
}
_SHORT = {None: "32", torch.bfloat16: "bf16", torch.float16: "16"}


def autocast_dtype(precision: str, option: str = "precision") -> Optional[torch.dtype]:
    """The autocast dtype of `precision` (None for float32); an unknown name fails, naming `option`."""
    if str(precision) not in PRECISIONS:
        raise ValueError(f"{option}={precision!r}: choose one of {', '.join(PRECISIONS)}")
    return PRECISIONS[str(precision)]


def short_precision(precision: str, option: str = "precision") -> str:
    """"32", "bf16" or "16": the name evaluation results record."""
    return _SHORT[autocast_dtype(precision, option)]
