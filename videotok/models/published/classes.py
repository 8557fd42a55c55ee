"""A checkpoint's classes against a data set's: which of its logits are the data's classes.

A model trained on more classes than the data has (Kinetics-710 or -600 on Kinetics-400) can be
scored on the data's classes by keeping only their logits, matched by name. Kinetics renamed some
classes after Kinetics-400 (Kinetics-600/700 and the VideoMAE V2 authors' K710 list use the new
names; the Kinetics-400 lists, torchvision's included, the old ones): `KINETICS_RENAMES` matches both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from videotok.data.labels import class_key

# Kinetics-400 name -> the name later Kinetics lists give the same class (the 13 that differ between
# torchvision's Kinetics-400 categories and the K400 label map the VideoMAE V2 authors ship beside
# their K710 one, position by position; their 710 -> 400 index map pairs them the same way)
KINETICS_RENAMES = {
    "balloon blowing": "inflating balloons",
    "changing wheel": "changing wheel (not on bike)",
    "cooking sausages": "cooking sausages (not on barbeque)",
    "drinking": "sipping cup",
    "dying hair": "dyeing hair",
    "garbage collecting": "person collecting garbage",
    "hugging": "hugging baby",
    "making bed": "making the bed",
    "opening bottle": "opening wine bottle",
    "picking fruit": "picking apples",
    "skiing (not slalom or crosscountry)": "skiing mono",
    "sniffing": "smelling feet",
    "tying tie": "tying necktie",
}
_RENAMED = {class_key(old): class_key(new) for old, new in KINETICS_RENAMES.items()}


@dataclass(frozen=True)
class ClassMatch:
    """Where each data class is among a model's classes."""

    rows: list[int]  # rows[i]: the model's logit for the data's class i
    renamed: list[tuple[str, str]]  # (data name, model name) matched through KINETICS_RENAMES
    model_classes: int

    def describe(self) -> str:
        renamed = f", {len(self.renamed)} of them by Kinetics' renames" if self.renamed else ""
        return (f"logits restricted to the data's {len(self.rows)} classes of the checkpoint's {self.model_classes} "
                f"(matched by name{renamed})")


def match_classes(model_classes: list[str], data_classes: list[str]) -> Optional[ClassMatch]:
    """The model's logit of every data class by name (`class_key`, then the Kinetics renames); None
    when some data class is not among the model's."""
    index = {class_key(name): i for i, name in enumerate(model_classes)}
    rows, renamed = [], []
    for name in data_classes:
        key = class_key(name)
        if key not in index and _RENAMED.get(key) in index:
            renamed.append((name, model_classes[index[_RENAMED[key]]]))
            key = _RENAMED[key]
        if key not in index:
            return None
        rows.append(index[key])
    return ClassMatch(rows, renamed, len(model_classes))


def missing_classes(model_classes: list[str], data_classes: list[str]) -> list[str]:
    """The data's classes the model has no logit for (by name, renames included)."""
    index = {class_key(name) for name in model_classes}
    return [n for n in data_classes if class_key(n) not in index and _RENAMED.get(class_key(n)) not in index]
