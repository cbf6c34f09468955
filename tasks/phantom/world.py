"""The phantom world's generator: eight lesion classes rendered in two imaging modalities.

Every image is a pure function of an integer key (``seed``, ``stream``, ``modality``, ``split``, ``index``):
``numpy.random.default_rng(key)`` draws the lesion's latent parameters and the modality's nuisances, the
picture is drawn at 2x resolution and box-downsampled to 32x32 px, then quantised to uint8. So any subset
can be regenerated alone, and two processes draw the same pixels.

Classes come in four confusable pairs (same family, different detail):

================  ============  =====================================================================
family            class         what tells the pair apart (distributions overlap on purpose)
================  ============  =====================================================================
solid round       adenoma       no or one faint inner speck
                  hamartoma     one to four bright specks (popcorn)
irregular solid   carcinoma     radiating spikes, some short
                  fibroma       rounded lobes, a few with small bumps
ring              cyst          thin smooth wall, clear centre
                  abscess       thicker uneven wall, grainy centre, halo
diffuse           infiltrate    soft clumps in a cluster
                  fibrosis      thin curved strands
================  ============  =====================================================================

Modalities: ``hi`` is a crisp colour picture (skin-toned background, dark lesion, hairs, bubbles, dark
scope corners); ``lo`` is grey, blurred, noisy and low-contrast (the lesion is a faint bright shadow over
rib-like bands, with letter markers and scan lines). Captions (:func:`caption`) describe what is visible
in words shared with the class descriptions, never with the class names.

This module composes the parts, each in its own module: the classes, image keys and latent parameters
(:mod:`kmat.tasks.phantom.lesions`), the pictures (:mod:`kmat.tasks.phantom.render`), appearance words
(:mod:`kmat.tasks.phantom.words`), remark sentences (:mod:`kmat.tasks.phantom.remarks`) and captions
(:mod:`kmat.tasks.phantom.captions`).
"""

from __future__ import annotations

import hashlib

import numpy as np
from kmat.tasks.phantom.captions import MODALITY_WORDS, NAMED, caption
from kmat.tasks.phantom.lesions import CLASS_NAMES, CLASSES, MODALITY_IDS, STREAMS, rng_for, sample_lesion
from kmat.tasks.phantom.render import IMAGE_SIZE, render_hi, render_lo
from kmat.tasks.phantom.words import visible_words

__all__ = [
    "CLASSES",
    "CLASS_NAMES",
    "GENERATOR_VERSION",
    "IMAGE_SIZE",
    "MODALITY_IDS",
    "MODALITY_WORDS",
    "NAMED",
    "caption",
    "corpus",
    "draw",
    "fingerprint",
    "split_labels",
    "visible_words",
]

GENERATOR_VERSION = 2


def draw(
    seed: int, stream: str, modality: str, split: str, index: int, label: int
) -> tuple[np.ndarray, dict]:
    """Image ``index`` of (stream, modality, split) with class ``label``: uint8 pixels and its attributes
    (the latent lesion parameters plus the nuisances drawn), a pure function of its arguments."""
    rng = rng_for(seed, stream, modality, split, index)
    p = sample_lesion(rng, label)
    img, nuis = (render_hi if modality == "hi" else render_lo)(rng, p)
    return img, {**p, **nuis, "modality": modality}


def fingerprint(seed: int) -> str:
    """12 hex digits of the SHA-256 of the first image of every split of world ``seed``: changes whenever
    the generator (or the numerics under it) draws different pixels, so a cache keyed by it is never stale."""
    digest = hashlib.sha256(f"v{GENERATOR_VERSION}-{seed}".encode())
    for modality in MODALITY_IDS:
        for split in ("train", "val", "test"):
            digest.update(draw(seed, "task", modality, split, 0, 0)[0].tobytes())
    return digest.hexdigest()[:12]


def split_labels(n: int) -> list[int]:
    """Balanced labels for a split of ``n`` images: 0, 1, ..., K-1, 0, 1, ... (counts differ by at most 1)."""
    return [i % len(CLASSES) for i in range(n)]


def corpus(
    seed: int, n: int, lo_fraction: float = 0.1, named_lo: float | None = None
) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """A captioned pretraining corpus of ``n`` images drawn from the ``pretrain`` stream (disjoint from the
    task's splits by construction of the keys): RGB pixels (n, 32, 32, 3) uint8 (low-end grey repeated),
    captions, labels and a boolean low-end mask. Classes are uniform; a ``lo_fraction`` of images is low-end,
    and a ``named_lo`` share of the low-end captions names a class (default :data:`NAMED`).
    """
    plan = np.random.default_rng([int(seed), STREAMS["pretrain"], 99])
    labels = plan.integers(0, len(CLASSES), n)
    is_lo = plan.random(n) < lo_fraction
    pixels = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    captions = []
    for i in range(n):
        mod = "lo" if is_lo[i] else "hi"
        img, attrs = draw(seed, "pretrain", mod, "corpus", i, int(labels[i]))
        pixels[i] = img[..., None] if img.ndim == 2 else img
        named = named_lo if mod == "lo" else None
        captions.append(caption(np.random.default_rng([int(seed), STREAMS["pretrain"], 98, i]), attrs, named))
    return pixels, captions, labels, is_lo
