"""Token reduction in plain torch: TokenState, merge plans, schedules and one file per strategy."""
from videotok.reduce.base import AttnInfo, AttnRequest, BackboneSpec, Reducer
from videotok.reduce.registry import (
    build_reducer,
    list_reducers,
    parse_reducer_args,
    reducer_arguments,
    reducer_class,
    register_reducer,
)
from videotok.reduce.state import TokenState

__all__ = [
    "AttnInfo", "AttnRequest", "BackboneSpec", "Reducer", "TokenState", "build_reducer", "list_reducers",
    "parse_reducer_args", "reducer_arguments", "reducer_class", "register_reducer",
]
