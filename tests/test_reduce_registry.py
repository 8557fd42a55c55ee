"""The reducer registry: names, arguments from command-line strings.

The invariants every reducer keeps run from tests/test_invariants.py (rows in tests/reducer_cases.py).
"""
from __future__ import annotations

from videotok.reduce import BackboneSpec, build_reducer, parse_reducer_args


def test_reducer_args_from_cli_strings() -> None:
    args = parse_reducer_args(["r=13", "layers=3,6,9", "scope=frame", "inflection=0.5"])
    reducer = build_reducer("tome", **args)
    reducer.bind(BackboneSpec(12, 384, 6, (8, 14, 14), 1, "divided"))
    assert sorted(reducer.schedule) == [3, 6, 9]
