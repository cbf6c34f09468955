"""Captions of the phantom world's pretraining corpus, like figure captions written by many authors.

A caption is the image's modality, its appearance words (:mod:`kmat.tasks.phantom.words`), sometimes a remark
(:mod:`kmat.tasks.phantom.remarks`) and sometimes a class name, each drawn from the caption's own generator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from kmat.tasks.phantom.lesions import CLASS_NAMES, CLASSES
from kmat.tasks.phantom.remarks import remark
from kmat.tasks.phantom.words import pick, visible_words

MODALITY_WORDS = {"hi": "crisp colour scan", "lo": "grey low-dose scan"}
_MODALITY_VARIANTS = {
    "hi": (("crisp colour scan", 0.6), ("colour scan", 0.25), ("crisp scan", 0.15)),
    "lo": (("grey low-dose scan", 0.6), ("low-dose scan", 0.25), ("grey scan", 0.15)),
}
NAMED = {"hi": 0.5, "lo": 0.5}  # share of captions that name a class, per modality
SWAPPED = 0.48  # share of named captions that name the partner class instead
NAME_ONLY = 0.1  # share of named captions that are only "a <modality> image of <name>."
_NOUNS = {"hi": ("lesion", "spot", "growth"), "lo": ("lesion", "opacity", "shadow", "spot")}

REMARKED = 0.6  # share of captions followed by one remark sentence


def caption(rng: np.random.Generator, a: dict[str, Any], named: float | None = None) -> str:
    """A pretraining caption for an image with attributes ``a``, like a figure caption in a paper.

    Appearance words come from :func:`visible_words`, each dropped with probability 0.2; a fraction
    :data:`REMARKED` of captions is followed by one remark (:func:`kmat.tasks.phantom.remarks.remark`). A class
    name is added to a fraction ``named`` (default :data:`NAMED` of the modality) of the captions; a
    fraction :data:`SWAPPED` of those name the partner class instead (so a name mostly tells the pair, only weakly the class: captions in the wild
    are noisy about diagnoses), and a fraction :data:`NAME_ONLY` of named captions are the bare
    "a <modality> image of <name>." with no appearance words.
    """
    mod = str(
        rng.choice(
            [v for v, _ in _MODALITY_VARIANTS[a["modality"]]],
            p=[q for _, q in _MODALITY_VARIANTS[a["modality"]]],
        )
    )
    seen = visible_words(rng, a)
    w = {k: v for k, v in seen.items() if k == "shape" or rng.random() > 0.2}
    noun = pick(rng, _NOUNS[a["modality"]])
    desc = " ".join(x for x in (w.get("size"), w["shape"], w.get("colour"), noun) if x)
    details = [x for x in (w.get("margin"), w.get("inner")) if x]
    detail = " and ".join(details)
    art = "an" if desc[0] in "aeiou" else "a"
    style = int(rng.integers(4))
    if style == 0:
        text = f"{mod} of {art} {desc}" + (f" with {detail}" if detail else "")
    elif style == 1:
        text = f"a {mod} image of {art} {desc}" + (f" with {detail}" if detail else "")
    elif style == 2:
        text = f"{desc}" + (f", {detail}" if detail else "") + f", {mod}"
    else:
        text = f"{mod}: the {noun} is {w['shape']}" + (f" and has {detail}" if detail else "")
    if "extra" in w:
        text += f"; {w['extra']}"
    text += "."
    if rng.random() < REMARKED:
        text += " " + remark(rng, a, seen, noun)
    if rng.random() < (NAMED[a["modality"]] if named is None else named):
        label = a["label"]
        if rng.random() < SWAPPED:
            label = CLASSES[label].partner
        name = CLASS_NAMES[label]
        if rng.random() < NAME_ONLY:
            return f"a {mod} image of {name}."
        form = int(rng.integers(3))
        text = (
            f"a {mod} image of {name}. {text}"
            if form == 0
            else (f"{text} {name}." if form == 1 else f"{text} likely {name}.")
        )
    return text
