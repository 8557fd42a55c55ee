"""A reducer named by the user: `--reducer NAME|PRESET.yaml --reducer-arg key=value ...` on any
command, parsed once, by the command's own parser, into one ReducerChoice."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from videotok.reduce.base import Reducer
from videotok.reduce.presets import is_preset_path, load_preset
from videotok.reduce.registry import build_reducer, parse_reducer_args

REDUCER_HELP = "reducer name (see `videotok reducers`) or a preset file (configs/reducer/*.yaml)"
REDUCER_ARG_HELP = "reducer argument, repeatable: --reducer-arg r=13 --reducer-arg layers=3,6,9"


@dataclass(frozen=True)
class ReducerChoice:
    """A registry name and its constructor arguments (what `build` passes to it)."""

    name: str = "none"
    args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_flags(cls, reducer: Optional[str], pairs: Sequence[str] = ()) -> Optional["ReducerChoice"]:
        """The values of `--reducer` and the `--reducer-arg` list; None when no reducer was named.
        A preset file gives the name and arguments, which `--reducer-arg` overrides."""
        if pairs and reducer is None:
            raise ValueError("--reducer-arg needs --reducer NAME too (arguments belong to a reducer)")
        if reducer is None:
            return None
        args = parse_reducer_args(list(pairs))
        if is_preset_path(reducer):
            reducer, preset_args = load_preset(reducer)
            args = {**preset_args, **args}
        return cls(reducer, args)

    def build(self) -> Reducer:
        """A new, unbound reducer; an unknown name or argument fails here, naming it."""
        return build_reducer(self.name, **self.args)

    @property
    def setting(self) -> str:
        """`r=8 scope=frame`: the arguments as they would be typed."""
        return " ".join(f"{k}={v}" for k, v in self.args.items())


def add_reducer_arguments(parser: Any) -> None:
    """`--reducer` and the repeatable `--reducer-arg` on an argparse or jsonargparse parser."""
    parser.add_argument("--reducer", default=None, help=REDUCER_HELP)
    parser.add_argument("--reducer-arg", action="append", default=[], metavar="KEY=VALUE", help=REDUCER_ARG_HELP)
