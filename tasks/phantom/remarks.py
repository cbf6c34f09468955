"""Remarks of the phantom captions: one sentence after a caption, drawn among those true of the image."""

from __future__ import annotations

from typing import Any

import numpy as np
from kmat.tasks.phantom.words import pick

_REMARKS: dict[str, tuple[str, ...]] = {
    # what a figure caption adds after the finding, per (modality or kind) and condition; every phrase is
    # true of the images it is attached to (see :func:`remarks`)
    "any": (
        "the {noun} is seen in the middle of the image.",
        "it is {size} in size.",
        "the {noun} looks {shape} rather than {other}.",
        "it may look different in another scan.",
        "one {noun} only, near the centre.",
        "a {shape} or {shape2} {noun}.",
        "it can sometimes look {shape2}, but it is {shape}.",
        "at this size, some of them look {shape2}.",
        "as seen here, most of them are {shape}.",
        "it shows no more than one {noun}.",
    ),
    "hi": (
        "the {noun} lies on pink or tan skin.",
        "the skin around it is even and pale.",
        "the {noun} is {colour} on skin-coloured background.",
        "hairs or bubbles may cross the skin.",
        "the lesion is flat and its colour is darker than the skin.",
        "it looks like a {colour} patch on the skin.",
    ),
    "lo": (
        "fine detail is hidden by blur and noise.",
        "for a low-dose scan, the {noun} shows little detail.",
        "detail is lost in the noise, so it is easy to miss.",
        "the {noun} is brighter than the grey around it.",
        "its edge fades into the grey background.",
        "small detail is smeared and softened by blur.",
        "the {noun} is barely visible, almost lost in the noise.",
        "it is very faint and often too hazy to see well.",
        "the background is slightly brighter on one side.",
    ),
    "bands": ("rib bands cross it.", "it is crossed by rib bands.", "rib bands are nearby."),
    "solid": (
        "a disc of even fill throughout.",
        "a simple disc, uniformly filled.",
        "the body is evenly coloured.",
        "nothing inside it except even fill.",
        "the {noun} is not hollow.",
    ),
    "plain": (
        "no specks or dots are seen inside.",
        "without specks, lobes or spikes.",
        "nothing in its core.",
    ),
    "specks": (
        "specks near its centre, like popcorn.",
        "a speckled core.",
        "its inside is dotted and sprinkled with bright points.",
        "{count} bright specks in it.",
        "the fill is broken by bright specks.",
        "the core holds white dots.",
        "a tiny speck may show as a bright point.",
        "inner specks are seen in the middle.",
    ),
    "spiculated": (
        "thin rays pointing outwards from a dense core.",
        "spikes of different lengths and varying length, tapering out.",
        "its border sends out spikes reaching into the background.",
        "the edge breaks into thin spikes all around, like a star.",
        "many thin spikes around a solid body.",
    ),
    "lobulated": (
        "the edge bulges out into smooth lobes.",
        "it looks like a few joined round bumps, like a flower.",
        "deep lobes can make it look star-shaped.",
        "the border is made of rounded lobes rather than lines.",
        "its lobes are broad and smooth.",
    ),
    "ring": (
        "a rim enclosing a space.",
        "a round rim around the centre, not solid.",
    ),
    "thick": (
        "a thick-walled ring, rimmed by a rough wobbly wall.",
        "the wall is thicker than a thin rim.",
        "the wall is rough and of uneven thickness.",
    ),
    "thin": (
        "a thin-walled ring.",
        "a fine smooth rim of even thickness.",
        "the wall has the same thickness all around.",
        "a ring whose wall is of even width.",
    ),
    "filled": ("grainy debris in its centre.", "the centre is partly filled.", "murky fill inside the rim."),
    "clear": ("the centre is clear and empty, with nothing inside.", "the centre is nearly empty."),
    "halo": ("a halo outside the wall.", "a soft halo spreading outside."),
    "patchy": (
        "clumps grouped together in a small area.",
        "soft patches that merge into one patch.",
        "a group of clumps of different sizes, close together.",
        "{count} clumps spreading over an area.",
        "opacities of varying size clustered in a group.",
    ),
    "streaky": (
        "strands crossing each other in a tangle.",
        "threads forming a web pattern.",
        "long curved strands, thin like hairs.",
        "each strand is thin and curved.",
        "thin lines that curve and cross over each other.",
    ),
}
_COUNTS = ("two", "three", "four", "five", "six", "seven")
REMARKED = 0.6  # share of captions followed by one remark sentence


def remarks(a: dict[str, Any], w: dict[str, str]) -> list[str]:
    """The remark groups of :data:`_REMARKS` that are true of an image with attributes ``a`` and
    appearance words ``w`` (from :func:`kmat.tasks.phantom.words.visible_words`)."""
    lo, kind = a["modality"] == "lo", a["kind"]
    keys = ["any", "lo" if lo else "hi"]
    if lo and a["bands"]:
        keys.append("bands")
    if kind in ("solid", "lobulated", "spiculated"):
        keys.append(kind)
        keys.append("specks" if "speck" in w.get("inner", "") or "dot" in w.get("inner", "") else "plain")
    if kind == "ring":
        keys += ["ring", "thick" if a["wall"] > 0.07 else "thin", "filled" if a["fill"] > 0.25 else "clear"]
        if a["halo"] > 0.15:
            keys.append("halo")
    if kind in ("patchy", "streaky"):
        keys.append(kind)
    return keys


def remark(rng: np.random.Generator, a: dict[str, Any], w: dict[str, str], noun: str) -> str:
    """One remark sentence about the image, drawn among those true of it (:func:`remarks`)."""
    keys = remarks(a, w)
    if a["kind"] in ("ring", "patchy", "streaky") or "specks" in keys:
        keys = [k for k in keys if k != "any" or rng.random() < 0.3]  # the telling remarks come more often
    phrase = pick(rng, _REMARKS[pick(rng, keys)])
    count = len(a.get("specks", [])) or len(a.get("blobs", [])) or 2
    shapes = _SHAPES[a["kind"]]
    others = [s for k, v in _SHAPES.items() if k != a["kind"] for s in v]
    return phrase.format(
        noun=noun,
        size=w.get("size", "medium"),
        shape=w["shape"],
        shape2=pick(rng, shapes),
        other=pick(rng, others),
        colour=w.get("colour", "grey"),
        count=_COUNTS[min(max(count, 2), 7) - 2],
    )


_SHAPES = {
    "solid": ("round", "oval", "circular"),
    "spiculated": ("spiky", "star-shaped", "radiating"),
    "lobulated": ("lobulated", "bumpy", "lumpy"),
    "ring": ("ring-shaped", "hollow", "ring-like"),
    "patchy": ("patchy", "blotchy", "clustered"),
    "streaky": ("streaky", "stringy", "web-like"),
}
