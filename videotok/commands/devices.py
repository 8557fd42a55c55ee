"""The device options of `evaluate` and `compare`: Lightning's own, over the config's `trainer:`."""
from __future__ import annotations

import argparse
from typing import Any, Union

from videotok.evaluate.engine import STRATEGIES, Runtime


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "devices (Lightning's options; default: the config's trainer section, else one device)")
    group.add_argument("--accelerator", help="cpu, gpu or auto")
    group.add_argument("--devices", type=_devices, help="devices per node: a number, a list like 0,1, or auto")
    group.add_argument("--num_nodes", "--num-nodes", type=int, help="machines (each with --devices devices)")
    group.add_argument("--strategy", choices=STRATEGIES,
                       help="how processes start (ddp: one per device; default auto)")
    group.add_argument("--device", help="one device the torch way (cpu, cuda, cuda:N), instead of the above")


def runtime_from_args(config: dict, args: argparse.Namespace, precision: Any = None) -> Runtime:
    """The Runtime the command line and the config's trainer section ask for, checked."""
    runtime = Runtime.from_options(config.get("trainer"), device=args.device, accelerator=args.accelerator,
                                   devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy,
                                   precision=precision)
    runtime.check()
    return runtime


def _devices(text: str) -> Union[int, str, list[int]]:
    if text == "auto":
        return text
    try:
        return [int(d) for d in text.split(",") if d] if "," in text else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number, a list like 0,1 or auto") from None
