"""kmat_cli.errors.short_repr: the repr an error message quotes, bounded in length and in work."""

from __future__ import annotations

from kmat_cli.errors import short_repr


def test_a_small_value_is_its_repr() -> None:
    for value in ("a'b", 3, [1, "x"], {"k": None}):
        assert short_repr(value) == repr(value)


def test_a_long_value_is_cut_to_the_limit_with_an_ellipsis() -> None:
    for value in ("x" * 1000, list(range(1000)), {str(i): "v" * 30 for i in range(1000)}):
        text = short_repr(value, 40)
        assert len(text) <= 40 and "..." in text and text[0] == repr(value)[0]


def test_a_huge_nested_value_is_abbreviated_while_rendering() -> None:
    deep: list = []
    for _ in range(10_000):  # repr() would recurse past the interpreter's limit
        deep = [deep]
    text = short_repr(deep)
    assert len(text) <= 200 and "..." in text
