"""The phantom captions are pinned: the shipped phantom backbone was pretrained on them, so a change of
the caption code that draws other words (or draws them in another order) must show up here."""

from __future__ import annotations

import hashlib

import pytest
from kmat.tasks.phantom import world


def _digest(captions: list[str]) -> str:
    return hashlib.sha256("\n".join(captions).encode("utf-8")).hexdigest()


def test_a_mixed_corpus_keeps_its_captions() -> None:
    _, captions, _, _ = world.corpus(7, 300, lo_fraction=0.5)
    assert _digest(captions) == "a17b8a2450cd1c2c8b8113d5d054c0cbbcb9b3c449d27de1ff357b639436fd6e"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("seed", "digest"),
    [
        (0, "d3fdef422fe40a37b0bb5a960cdbbc51fcaba7e9de837afb2c0754194114b25d"),
        (1, "6b962f3202f54fdf328217b1c64ee07204c2abb461bd6f743a2591023652726c"),
        (1234, "552ca2f826331d65993651534a2bbeeadf4c269390a807bf8da5609aa5bb7d67"),
    ],
)
def test_pretraining_corpora_keep_their_captions(seed: int, digest: str) -> None:
    _, captions, _, _ = world.corpus(seed, 2000)
    assert _digest(captions) == digest
