"""The model's answers read and tidied: JSON, fenced, listed or prose answers parsed, items cleaned, and
items accepted only when non-empty, short enough and new."""

from __future__ import annotations

import json

import pytest

from kmat_cli import describe as lib

ITEMS = ["Round lesion with a smooth margin", "Dark blotch at the centre"]


# ------------------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize(
    "answer",
    [
        json.dumps({"descriptions": ITEMS}),
        json.dumps(ITEMS),
        "```json\n" + json.dumps({"descriptions": ITEMS}) + "\n```",
        "Sure, here you are.\n```\n" + json.dumps(ITEMS, indent=2) + "\n```\nAnything else?",
        "Here is the JSON: " + json.dumps({"Descriptions": ITEMS}) + " Hope it helps.",
        json.dumps({"melanoma": {"dermoscopy": ITEMS}}),
        json.dumps([{"description": t, "id": i} for i, t in enumerate(ITEMS)]),
        "Here are two descriptions:\n1. Round lesion with a smooth margin\n2) Dark blotch at the centre\n",
        "- Round lesion with a smooth margin\n* Dark blotch at the centre",
        "Round lesion with a smooth margin\nDark blotch at the centre\n",
        '<think>they want json, maybe {"descriptions": ["nope"]}</think>\n' + json.dumps(ITEMS),
        '{"descriptions": [\n  "Round lesion with a smooth margin",\n  "Dark blotch at the centre",\n  "Trunc',
    ],
)
def test_parse_answer_formats(answer: str) -> None:
    got = lib.accept(lib.parse_answer(answer), max_words=30, seen=set(), rejected=lib.Rejected())
    assert got[:2] == ITEMS


def test_clean_strips_markers_quotes_emphasis() -> None:
    assert lib.clean('  3. "**Blue-white veil** over the lesion",') == "Blue-white veil over the lesion"
    assert lib.clean("• \u2018Irregular   dots\u2019") == "Irregular dots"
    assert lib.clean("(12) Milia-like cysts") == "Milia-like cysts"
    assert lib.clean("3D-looking plaque") == "3D-looking plaque"  # a leading number is not a marker


def test_accept_validates_and_counts() -> None:
    seen: set[str] = set()
    rejected = lib.Rejected()
    items = [
        "A pink nodule.",
        "a PINK nodule",
        "",
        "12.",
        "one two three four five six",
        "A pink nodule!",
        "B",
    ]
    got = lib.accept(items, max_words=5, seen=seen, rejected=rejected)
    assert got == ["A pink nodule.", "B"]
    assert (rejected.empty, rejected.too_long, rejected.duplicate) == (2, 1, 2)
    assert lib.accept(["A  pink, nodule"], max_words=5, seen=seen, rejected=rejected) == []  # seen before
