"""Appearance words of the phantom world: what a caption may say is visible in an image.

:func:`visible_words` maps an image's attributes (from :func:`kmat.tasks.phantom.world.draw`) to phrases drawn
from the image's caption generator. They share their vocabulary with the class descriptions
(``tasks/phantom/descriptions.json``), never with the class names.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    """One of ``options``, uniformly: ``options[rng.integers(len(options))]``."""
    return options[int(rng.integers(len(options)))]


_OUTLINED = ("solid", "lobulated", "spiculated")  # kinds with an outline and a filled inside
_SHAPE_WORDS = {  # kind -> shape words (kinds with two sets: the first where the feature is marked)
    "solid": (("oval", "elongated"), ("round", "circular", "regular round")),
    "spiculated": (("spiky", "star-shaped", "radiating", "irregular"), ("bumpy", "spiky")),
    "lobulated": (("lobulated", "bumpy", "star-shaped"), ("lobulated", "bumpy", "lumpy", "wavy")),
    "ring": (("ring-shaped", "hollow", "ring-like"),),
    "patchy": (("patchy", "blotchy", "clustered"),),
    "streaky": (("streaky", "stringy", "web-like"),),
}
_NUISANCE_WORDS = {  # modality -> (attribute, words): nuisances mentioned with probability 0.6 each
    "lo": (("bands", "rib bands"), ("marker", "a letter marker"), ("lines", "scan lines")),
    "hi": (("hairs", "hairs"), ("bubbles", "bubbles"), ("corners", "dark corners")),
}


def visible_words(rng: np.random.Generator, a: dict[str, Any]) -> dict[str, str]:
    """Appearance phrases for what is visible in an image with attributes ``a`` (from :func:`draw`).

    Keys: size, shape, colour, margin, inner, extra (nuisances); a missing key means "not mentioned".
    Low-end images lose fine detail: specks and wall thickness are rarely visible, margins look blurry.
    Several synonyms per finding, as figure captions written by many authors have. The phrases are drawn
    from ``rng`` in the order of the keys above (size, shape, margin, inner, extra).
    """
    lo = a["modality"] == "lo"
    spikes = [s[1] for s in a.get("spikes", [])]
    long_spikes = bool(spikes) and float(np.mean(spikes)) > 0.3
    words = {
        "size": _size_words(rng, a["r"]),
        "shape": _shape_words(rng, a, long_spikes),
        "margin": _margin_words(rng, a, lo, long_spikes),
        "inner": _inner_words(rng, a, lo),
        "colour": None if lo else a["colour"],
        "extra": ", ".join(_nuisance_words(rng, a, lo)) or None,
    }
    return {key: value for key, value in words.items() if value is not None}


def _size_words(rng: np.random.Generator, r: float) -> str | None:
    if r < 0.3:
        return "small"
    if r > 0.4:
        return "large"
    return "medium" if rng.random() < 0.4 else None


def _shape_words(rng: np.random.Generator, a: dict[str, Any], long_spikes: bool) -> str:
    """The shape; solid, spiculated and lobulated lesions are worded by elongation, spike or lobe depth."""
    kind = a["kind"] if a["kind"] in _SHAPE_WORDS else "streaky"
    marked = {"solid": a.get("ell", 0) > 0.15, "spiculated": long_spikes}.get(kind)
    if kind == "lobulated":
        marked = a["lobes"][1] > 0.22
    options = _SHAPE_WORDS[kind]
    return pick(rng, options[0] if marked or len(options) == 1 else options[1])


def _margin_words(rng: np.random.Generator, a: dict[str, Any], lo: bool, long_spikes: bool) -> str:
    """The outline (always blurry on the low end), then sometimes what the lobes or short spikes add."""
    kind = a["kind"]
    if lo:
        margin = pick(rng, ("a blurry outline", "a soft outline", "a hazy outline", "blurred edges"))
    elif kind == "ring":
        margin = ("an uneven " if a["irregular"] > 0.08 else "a smooth ") + pick(rng, ("wall", "rim"))
    elif kind == "spiculated" and long_spikes:
        margin = pick(rng, ("a jagged edge", "radiating lines", "thin spikes", "radiating spikes"))
    elif kind in _OUTLINED:
        sharp = (
            pick(rng, ("a sharp", "a crisp", "a well-defined", "a clean"))
            if a["edge"] < 0.025
            else pick(rng, ("a fuzzy", "a soft", "a blurred"))
        )
        margin = f"{sharp} {pick(rng, ('edge', 'border', 'outline'))}"
    else:
        margin = pick(rng, ("no clear border", "an ill-defined border", "soft edges"))
    if kind == "lobulated" and rng.random() < 0.5:
        margin += " and " + pick(rng, ("rounded lobes", "broad lobes", "smooth bulges", "a wavy edge"))
    elif kind == "spiculated" and not long_spikes and rng.random() < 0.5:
        margin += " and " + pick(rng, ("short spikes", "small bumps"))
    return margin


def _inner_words(rng: np.random.Generator, a: dict[str, Any], lo: bool) -> str | None:
    """What is inside the lesion, or None when nothing inside is visible."""
    kind = a["kind"]
    if kind in _OUTLINED:
        return _speck_words(rng, [s[3] for s in a.get("specks", [])], lo)
    if kind == "ring":
        return _ring_inside_words(rng, a, lo)
    if kind == "patchy":
        many = len(a["blobs"]) > 4
        return pick(
            rng,
            ("several soft clumps", "scattered clumps", "a cluster of soft blotches")
            if many
            else ("a few clumps", "a few soft spots"),
        )
    inner = pick(rng, ("thin strands", "fine lines", "thread-like lines", "thin curved streaks"))
    return inner + " and a faint haze" if a["haze"] > 0.2 else inner


def _speck_words(rng: np.random.Generator, specks: list[float], lo: bool) -> str | None:
    """The fill of an outlined lesion with specks of brightness ``specks`` (faint ones vanish on the low end)."""
    seen = [s for s in specks if s > (0.85 if lo else 0.45)]
    if lo and specks and not seen:
        return None  # too faint to see behind the blur: not mentioned
    if len(seen) >= 2:
        return pick(rng, ("bright specks", "white dots", "popcorn specks", "bright dots inside"))
    if len(seen) == 1:
        return pick(rng, ("a bright speck", "one white dot", "a brighter dot"))
    if specks:
        return pick(rng, ("a faint speck", "a faint dot"))
    if lo:
        return pick(rng, ("even fill", "even brightness"))
    return pick(rng, ("uniform fill", "even colour", "plain inside", "solid even fill"))


def _ring_inside_words(rng: np.random.Generator, a: dict[str, Any], lo: bool) -> str | None:
    """A ring's centre, wall thickness (thin walls vanish on the low end) and halo."""
    parts = []
    if a["fill"] < 0.15:
        parts.append(
            pick(rng, ("a clear centre", "an empty centre", "a darker centre" if lo else "a clear middle"))
        )
    elif a["fill"] > 0.25:
        parts.append(pick(rng, ("a grainy centre", "a murky centre", "a filled centre")))
    if a["wall"] > (0.085 if lo else 0.07):
        parts.append(pick(rng, ("a thick wall", "a thick rim")))
    elif not lo and a["wall"] < 0.05:
        parts.append(pick(rng, ("a thin wall", "a thin rim")))
    if a["halo"] > 0.15 and rng.random() < 0.6:
        parts.append("a soft halo")
    return " and ".join(parts) or None


def _nuisance_words(rng: np.random.Generator, a: dict[str, Any], lo: bool) -> list[str]:
    """The nuisances mentioned: the low end's look, then each present nuisance with probability 0.6."""
    extras = [pick(rng, ("faint", "hazy", "noisy", "low contrast", "on a grey background"))] if lo else []
    for key, words in _NUISANCE_WORDS["lo" if lo else "hi"]:
        if a[key] and rng.random() < 0.6:
            extras.append(words)
    return extras
