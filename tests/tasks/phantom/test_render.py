"""The phantom world's pixels are pinned: the shipped phantom backbone and every committed phantom report were
made from them, so a change of the drawing code that draws other pixels must show up here (the captions are
pinned in test_world_captions.py)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from kmat.tasks.phantom import world

K = len(world.CLASSES)


def _digest(arrays: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()


def test_every_class_of_every_split_keeps_its_pixels() -> None:
    """Two images of each class in each (modality, split) of world 0, with the split's labels."""
    drawn = [
        world.draw(0, "task", modality, split, index, world.split_labels(2 * K)[index])
        for modality in world.MODALITY_IDS
        for split in ("train", "val", "test")
        for index in range(2 * K)
    ]
    assert (
        _digest([image for image, _ in drawn])
        == "1f5f4bed0a82a42fc8ee2f1d825f72034b2f75ecfa9bf9b46e642416c04f34cd"
    )
    attributes = json.dumps([attrs for _, attrs in drawn], sort_keys=True).encode()
    assert (
        hashlib.sha256(attributes).hexdigest()
        == "69d5b5016329048d69650ef7a0858ce2da88e4ffdc70d58dfdaead36e88e1816"
    )


def test_another_world_keeps_its_pixels_and_fingerprint() -> None:
    images = [world.draw(23, "task", m, "test", i, i % K)[0] for m in world.MODALITY_IDS for i in range(K)]
    assert _digest(images) == "34b8f676e069d7b88c00f79d02b90a8125a14445be96df06eaa9c2f50516f9fe"
    assert world.fingerprint(23) == "f88dd10c6df2"


def test_the_pretraining_corpus_keeps_its_pixels_labels_and_modalities() -> None:
    pixels, _, labels, is_lo = world.corpus(7, 64, lo_fraction=0.5)
    assert (
        _digest([pixels, labels, is_lo]) == "f869b3eb3d6fe869ca512ca27898669d7d52849290f6ee0fe5453aa19c32036d"
    )


def test_split_labels_are_balanced_in_order() -> None:
    assert world.split_labels(11) == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2]
