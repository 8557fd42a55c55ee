"""`none`: the full-token baseline every strategy is measured against."""
from videotok.reduce.base import Reducer
from videotok.reduce.registry import register_reducer


@register_reducer("none")
class NoReduction(Reducer):
    """Keeps every token at every block."""

    def __init__(self) -> None:
        super().__init__()
