"""Count the ATen ops a piece of code dispatches, and the ones among them that wait for the device.

On a GPU every ATen op is (at least) one kernel launch, and an op whose result the host must read
(`.item()`, `bool()` of a tensor, `nonzero`, boolean-mask indexing, `torch.unique`, a copy to the CPU)
stalls the host until the device has finished everything queued before it. A reduced forward is only
faster than the full-token one if it launches few kernels and never waits, so both are counted here on
any machine, the CPU included (DESIGN.md, "Where the time goes on a GPU").

Reads of a tensor's value by the host (`.item()`, `int()`, `float()`, `bool()`, `.tolist()`, `.numpy()`)
are counted one level up, by a TorchFunctionMode, once per call: `.tolist()` of a CPU tensor dispatches
no ATen op at all (on a GPU it is a device-to-host copy), and the others dispatch different ops in
different modes (`aten.item` under inference_mode, `aten._local_scalar_dense` otherwise).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# ops whose result the host reads (a scalar, or an output whose shape depends on the data)
SYNC_OPS = frozenset({
    "aten._local_scalar_dense",  # .item(), int(), float(), bool() of a tensor
    "aten.item",
    "aten.is_nonzero",
    "aten.equal",
    "aten.nonzero",  # nonzero_static is fine: its size is given
    "aten.masked_select",
    "aten._unique",
    "aten._unique2",
    "aten.unique_dim",
    "aten.unique_consecutive",
    "aten.unique_dim_consecutive",
})
# ops that wait only with some arguments: a boolean index (data-dependent shape), a repeat without
# its output size, a copy from the device to the host
_MASKED_INDEX_OPS = frozenset({"aten.index", "aten.index_put", "aten.index_put_", "aten._index_put_impl_"})
# Tensor methods that read data back to the host without dispatching an ATen op on a CPU tensor
_HOST_READS = frozenset({"item", "__int__", "__float__", "__bool__", "__index__", "tolist", "numpy", "__array__"})


def _op_name(func: Any) -> str:
    return f"aten.{func._schema.name.split('::')[-1]}" if hasattr(func, "_schema") else str(func)


def _has_bool_index(args: tuple) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in (indices or ()))


def waits_for_device(func: Any, args: tuple, kwargs: dict) -> bool:
    """Whether this ATen call makes the host wait for the device (see the module doc)."""
    name = _op_name(func)
    if name in SYNC_OPS:
        return True
    if name in _MASKED_INDEX_OPS:
        return _has_bool_index(args)
    if name == "aten.repeat_interleave":  # tensor repeats: the output length is their sum
        return func._overloadname in ("Tensor", "self_Tensor") and kwargs.get("output_size") is None
    if name in ("aten._to_copy", "aten.copy_"):
        source = args[1] if name == "aten.copy_" else args[0]
        target = kwargs.get("device") if name == "aten._to_copy" else args[0].device
        return (isinstance(source, torch.Tensor) and source.device.type != "cpu" and target is not None
                and torch.device(target).type == "cpu")
    return False


@dataclass
class OpCount:
    """ops: every ATen op dispatched, by name; syncs: those that wait for the device, by name."""

    ops: Counter = field(default_factory=Counter)
    syncs: Counter = field(default_factory=Counter)
    reading: int = 0  # > 0 inside a host read counted by its Tensor method (its own ATen ops are not counted again)

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def total_syncs(self) -> int:
        return sum(self.syncs.values())


class _DispatchCounter(TorchDispatchMode):
    def __init__(self, count: OpCount) -> None:
        super().__init__()
        self.count = count

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _op_name(func)
        self.count.ops[name] += 1
        if not self.count.reading and waits_for_device(func, args, kwargs):
            self.count.syncs[name] += 1
        return func(*args, **kwargs)


class _HostReadCounter(TorchFunctionMode):
    def __init__(self, count: OpCount) -> None:
        super().__init__()
        self.count = count

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name not in _HOST_READS:
            return func(*args, **(kwargs or {}))
        if not self.count.reading:
            self.count.syncs[f"Tensor.{name}"] += 1
        self.count.reading += 1
        try:
            return func(*args, **(kwargs or {}))
        finally:
            self.count.reading -= 1


class count_ops:
    """Context manager: `with count_ops() as count: model(video)`, then `count.total`,
    `count.total_syncs` and the per-op Counters `count.ops`, `count.syncs`."""

    def __init__(self) -> None:
        self.count = OpCount()
        self._modes = (_HostReadCounter(self.count), _DispatchCounter(self.count))

    def __enter__(self) -> OpCount:
        for mode in self._modes:
            mode.__enter__()
        return self.count

    def __exit__(self, *exc: Any) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
