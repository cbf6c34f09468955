"""The phantom world's lesions: the eight classes, the key of every image and each class's latent parameters.

Every image is keyed by five integers (``seed``, ``stream``, ``modality``, ``split``, ``index``);
:func:`rng_for` seeds ``numpy.random.default_rng`` with them, so any image can be drawn alone and two
processes draw the same numbers. :func:`sample_lesion` draws the first numbers of that generator: the
lesion's geometry in [-1, 1] image coordinates and its class's details (specks, spikes, lobes, wall, clumps,
strands).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

STREAMS = {"task": 0, "pretrain": 1}
MODALITY_IDS = {"hi": 0, "lo": 1}
SPLIT_IDS = {"train": 0, "val": 1, "test": 2, "corpus": 3}


@dataclass(frozen=True)
class LesionClass:
    """A class of the phantom world: its prompt name, its drawing kind and its confusable partner."""

    name: str
    kind: str
    partner: int


CLASSES: tuple[LesionClass, ...] = (
    LesionClass("adenoma", "solid", 1),
    LesionClass("hamartoma", "solid", 0),
    LesionClass("carcinoma", "spiculated", 3),
    LesionClass("fibroma", "lobulated", 2),
    LesionClass("cyst", "ring", 5),
    LesionClass("abscess", "ring", 4),
    LesionClass("infiltrate", "patchy", 7),
    LesionClass("fibrosis", "streaky", 6),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)


def rng_for(seed: int, stream: str, modality: str, split: str, index: int) -> np.random.Generator:
    """The generator of one image: a SeedSequence keyed by all five coordinates (no shared state)."""
    key = [int(seed), STREAMS[stream], MODALITY_IDS[modality], SPLIT_IDS[split], int(index)]
    return np.random.default_rng(key)


def sample_lesion(rng: np.random.Generator, label: int) -> dict[str, Any]:
    """Draw the latent lesion parameters of class ``label`` (geometry in [-1, 1] image coordinates)."""
    kind = CLASSES[label].kind
    p: dict[str, Any] = {
        "label": label,
        "kind": kind,
        "cx": float(np.clip(rng.normal(0, 0.12), -0.25, 0.25)),
        "cy": float(np.clip(rng.normal(0, 0.12), -0.25, 0.25)),
        "r": float(rng.uniform(0.24, 0.46)),
        "theta": float(rng.uniform(0, 2 * np.pi)),
        "ell": float(rng.uniform(0.0, 0.25)),
        "edge": float(rng.uniform(0.008, 0.05)),
        "specks": [],
    }
    if kind == "solid":
        if label == 0:  # adenoma: mostly plain, one in seven with one faint speck
            n = int(rng.random() < 0.15)
            lo, hi = 0.25, 0.6
        else:  # hamartoma: popcorn specks, sometimes only one faint one
            n = int(rng.choice([1, 2, 3, 4], p=[0.25, 0.35, 0.25, 0.15]))
            lo, hi = 0.35, 1.0
        p["specks"] = _specks(rng, n, p["r"], lo, hi)
    elif kind == "spiculated":
        n = int(rng.integers(5, 12))
        base = float(rng.uniform(0.3, 0.75))  # short spikes look like bumps: overlaps with fibroma
        p["core"] = float(rng.uniform(0.7, 0.9))
        p["spikes"] = [
            (float(a), float(base * rng.uniform(0.6, 1.4)), float(rng.uniform(0.02, 0.035)))
            for a in rng.uniform(0, 2 * np.pi, n)
        ]
        p["ell"] *= 0.5
    elif kind == "lobulated":
        p["lobes"] = (
            int(rng.integers(3, 7)),
            float(rng.uniform(0.1, 0.28)),
            float(rng.uniform(0, 2 * np.pi)),
        )
        n_bumps = int(rng.integers(1, 4)) if rng.random() < 0.3 else 0
        p["spikes"] = [
            (float(a), float(rng.uniform(0.08, 0.25)), float(rng.uniform(0.015, 0.03)))
            for a in rng.uniform(0, 2 * np.pi, n_bumps)
        ]
        p["core"] = 1.0
    elif kind == "ring":
        if label == 4:  # cyst: thin smooth wall, nearly clear centre
            p["wall"] = float(rng.uniform(0.035, 0.07))
            p["irregular"] = float(rng.uniform(0.0, 0.06))
            p["fill"] = float(rng.uniform(0.0, 0.22))
            p["halo"] = 0.0
        else:  # abscess: thicker uneven wall, grainy centre, a soft halo
            p["wall"] = float(rng.uniform(0.05, 0.11))
            p["irregular"] = float(rng.uniform(0.04, 0.16))
            p["fill"] = float(rng.uniform(0.15, 0.5))
            p["halo"] = float(rng.uniform(0.0, 0.35))
        p["wobble"] = (int(rng.integers(3, 6)), float(rng.uniform(0, 2 * np.pi)))
        p["grain"] = rng.uniform(0.0, 1.0, (8, 8)).tolist()
    elif kind == "patchy":
        n = int(rng.integers(3, 8))
        p["blobs"] = [
            (
                float(p["cx"] + p["r"] * rng.normal(0, 0.6)),
                float(p["cy"] + p["r"] * rng.normal(0, 0.6)),
                float(rng.uniform(0.05, 0.14)),
                float(rng.uniform(0.5, 1.0)),
            )
            for _ in range(n)
        ]
    elif kind == "streaky":
        n = int(rng.integers(3, 8))
        strands = []
        for _ in range(n):
            pts = np.array([p["cx"], p["cy"]]) + p["r"] * rng.uniform(-1, 1, (3, 2))
            strands.append((pts.tolist(), float(rng.uniform(0.012, 0.028)), float(rng.uniform(0.6, 1.0))))
        p["strands"] = strands
        p["haze"] = float(rng.uniform(0.1, 0.4))
    return p


def _specks(rng: np.random.Generator, n: int, r: float, lo: float, hi: float) -> list[tuple[float, ...]]:
    """``n`` bright dots inside 0.55 r of the centre: (dx, dy, sigma, intensity)."""
    out = []
    for _ in range(n):
        rad, ang = 0.55 * r * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
        out.append(
            (
                float(rad * np.cos(ang)),
                float(rad * np.sin(ang)),
                float(rng.uniform(0.02, 0.035)),
                float(rng.uniform(lo, hi)),
            )
        )
    return out
