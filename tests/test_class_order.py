"""A published model's classes against a data folder's: same names in the same order, or an error
that names both sources and what to run."""
from __future__ import annotations

import pytest

from videotok.data.labels import check_class_order, class_key


def test_names_match_across_spellings():
    assert class_key("  Playing_Guitar ") == class_key("playing guitar") == class_key('"playing guitar"')
    check_class_order(["Air_drumming", "abseiling"], "data/classes.txt", ["air drumming", "Abseiling"], "model")


def test_another_order_names_the_first_difference_and_the_fix():
    with pytest.raises(ValueError, match=r"data/classes.txt has the classes of model M in another order: label 0 "
                                         r"is 'b' in the data, 'a' in the model\. run this"):
        check_class_order(["b", "a"], "data/classes.txt", ["a", "b"], "model M", fix="run this")


def test_other_classes_are_listed():
    with pytest.raises(ValueError, match=r"lists 2 classes, model M has 3 other ones; not among the model's: \['z'\]"):
        check_class_order(["a", "z"], "data/classes.txt", ["a", "b", "c"], "model M")
