"""The phantom task: deterministic generation, atomic caching, split sizes, modality statistics, captions."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from kmat.tasks import phantom
from kmat.tasks.phantom import DESCRIPTIONS, SIZES, Phantom, render, world
from PIL import Image

from kmat_cli.api import MODALITIES, SPLITS, UsageError, load_descriptions

K = len(world.CLASSES)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Phantom:
    """World 0, every split at its full size."""
    task = Phantom(seed=0, root=str(tmp_path_factory.mktemp("world0")))
    task.manifest  # noqa: B018 - generates
    return task


def test_same_bytes_twice_and_a_race_leaves_one_complete_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two generators write the same world into one folder, both mid-way at once (each waits for the other at
    its first image), as two kmat processes may: the folder holds one complete copy, byte for byte what one
    generation alone writes, and the loser's temporary folder is gone. Splits of 9 images keep it quick."""
    monkeypatch.setattr(phantom, "SIZES", {m: dict.fromkeys(SPLITS, 9) for m in MODALITIES})
    alone = Phantom(seed=0, root=str(tmp_path / "alone"))
    alone.manifest  # noqa: B018 - generates
    folder = Phantom(seed=0, root=str(tmp_path / "raced")).folder

    both_drawing = threading.Barrier(2, timeout=60)
    waited: set[int] = set()
    draw = world.draw

    def draw_when_both_started(*args, **kwargs):
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            both_drawing.wait()
        return draw(*args, **kwargs)

    monkeypatch.setattr(world, "draw", draw_when_both_started)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            phantom.generate(folder, 0)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(waited) == 2  # both drew: one renamed its folder into place, the other found it there
    a, b = _digests(alone.folder), _digests(folder)
    assert a == b
    assert len(a) == 2 * len(SPLITS) * 9 + 1  # every PNG plus the manifest
    leftovers = [p.name for p in folder.parent.iterdir() if p != folder]
    assert leftovers == []  # the loser's temporary folder was removed


def test_folder_is_keyed_by_version_seed_and_pixels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = Phantom(seed=3, root=str(tmp_path)).folder.name
    assert name == f"v{world.GENERATOR_VERSION}-seed3-{world.fingerprint(3)}"
    assert Phantom(seed=3).folder != Phantom(seed=4).folder
    # a generator that draws other pixels gets another folder, never the old files
    monkeypatch.setattr(render, "_to_uint8", lambda img: (np.clip(img, 0, 1) * 254).astype(np.uint8))
    assert Phantom(seed=3, root=str(tmp_path)).folder.name != name


def test_split_sizes_and_balance(generated: Phantom) -> None:
    task = generated
    for modality in MODALITIES:
        for split in SPLITS:
            samples = task.split(modality, split)
            assert len(samples) == SIZES[modality][split]
            counts = Counter(s.label for s in samples)
            assert set(counts) == set(range(K))
            assert max(counts.values()) - min(counts.values()) <= 1
            assert all(s.path.is_file() for s in samples)
    with pytest.raises(UsageError):
        task.split("lo", "holdout")


def test_pixels_match_the_generator(generated: Phantom) -> None:
    task = generated
    for modality in MODALITIES:
        sample = task.split(modality, "test")[5]
        img, _ = world.draw(0, "task", modality, "test", 5, sample.label)
        assert np.array_equal(np.asarray(Image.open(sample.path)), img)


def _load(task: Phantom, modality: str) -> np.ndarray:
    return (
        np.stack([np.asarray(Image.open(s.path).convert("RGB")) for s in task.split(modality, "test")])
        / 255.0
    )


def test_modalities_differ_statistically(generated: Phantom) -> None:
    """High end: coloured, contrasted, clean. Low end: grey, flat, noisy."""
    hi, lo = _load(generated, "hi"), _load(generated, "lo")

    def saturation(x: np.ndarray) -> np.ndarray:
        return ((x.max(-1) - x.min(-1)) / (x.max(-1) + 1e-6)).mean(axis=(1, 2))

    def contrast(x: np.ndarray) -> np.ndarray:
        # dynamic range (98th - 2nd percentile) of 2x2 block means: lesion against background, noise averaged
        b = x.mean(-1).reshape(len(x), 16, 2, 16, 2).mean(axis=(2, 4))
        return np.percentile(b, 98, axis=(1, 2)) - np.percentile(b, 2, axis=(1, 2))

    def noise(x: np.ndarray) -> np.ndarray:  # median absolute pixel-to-right-neighbour difference
        g = x.mean(-1)
        return np.median(np.abs(np.diff(g, axis=2)), axis=(1, 2))

    assert np.median(saturation(hi)) > 0.2 and saturation(lo).max() == 0.0
    # world v2 degrades the low end less than v1 (LO_LOOK), so that its features separate the classes:
    # measured median contrast ratio 1.13 on seed 0 (v1: above 1.2)
    assert np.median(contrast(hi)) > 1.1 * np.median(contrast(lo))
    assert np.median(noise(lo)) > 2.0 * np.median(noise(hi))


def test_pretraining_corpus_shares_no_image_with_the_splits(generated: Phantom) -> None:
    task = generated
    split_hashes = {
        hashlib.sha256(np.asarray(Image.open(s.path).convert("RGB")).tobytes()).hexdigest()
        for m in MODALITIES
        for sp in SPLITS
        for s in task.split(m, sp)
    }
    assert len(split_hashes) == sum(sum(s.values()) for s in SIZES.values())  # no duplicate inside the task
    # the corpus stream is disjoint for any seed, even the task's own
    for seed in (0, 1234):
        pixels, captions, _, is_lo = Phantom.corpus(seed, 120, lo_fraction=0.5)
        assert len(captions) == 120 and is_lo.any() and (~is_lo).any()
        corpus_hashes = {hashlib.sha256(p.tobytes()).hexdigest() for p in pixels}
        assert corpus_hashes.isdisjoint(split_hashes)


def test_descriptions_file() -> None:
    import json

    raw = json.loads(DESCRIPTIONS.read_text(encoding="utf-8"))
    assert raw["format"] == "kmat.descriptions/v1" and raw["provenance"]["source"] == "hand-written"
    desc = load_descriptions(DESCRIPTIONS, list(world.CLASS_NAMES))
    for modality in MODALITIES:
        for name in world.CLASS_NAMES:
            texts = desc[modality][name]
            assert len(texts) >= 20 and len(set(texts)) == len(texts)
    # the two modalities are described differently (how each class looks there), not copied
    for name in world.CLASS_NAMES:
        assert not set(desc["hi"][name]) & set(desc["lo"][name])


def test_captions_never_use_class_names_as_appearance_words() -> None:
    name_words = {w for n in world.CLASS_NAMES for w in n.split()}
    rng = np.random.default_rng(0)
    named = 0
    for i in range(200):
        label = i % K
        _, attrs = world.draw(7, "pretrain", "lo" if i % 5 == 0 else "hi", "corpus", i, label)
        words = " ".join(world.visible_words(rng, attrs).values()).replace(",", " ").split()
        assert not name_words & set(words)
        text = world.caption(rng, attrs)
        named += any(n in text for n in world.CLASS_NAMES)
    assert 60 < named < 140  # a class name in about half of the captions


def test_low_end_captions_name_the_modality_and_use_the_descriptions_words() -> None:
    """Every low-end caption names its modality; the appearance words drawn for low-end images are, with
    a few exceptions (sizes, the letter marker), words of the low-end descriptions."""
    from kmat.backbones.phantom.tokenizer import words

    desc = load_descriptions(DESCRIPTIONS, list(world.CLASS_NAMES))
    lo_words = {w for texts in desc["lo"].values() for t in texts for w in words(t)}
    _, captions, _, is_lo = world.corpus(5, 160, lo_fraction=0.5)
    lo_caps = [c for c, lo in zip(captions, is_lo, strict=True) if lo]
    assert len(lo_caps) > 50
    for text in lo_caps:
        assert "low-dose scan" in text or "grey scan" in text, text
        assert "colour" not in words(text), text
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    for i in range(400):
        _, attrs = world.draw(3, "pretrain", "lo", "corpus", i, i % K)
        seen.update(w for phrase in world.visible_words(rng, attrs).values() for w in words(phrase))
    assert {"faint", "hazy", "blurry", "grey", "rib", "bands", "darker", "centre", "thick", "bright"} <= seen
    assert len(seen - lo_words) <= 0.1 * len(seen), sorted(seen - lo_words)


def test_named_share_of_low_end_captions_follows_the_option() -> None:
    def named(share: float | None) -> float:
        _, captions, _, _ = world.corpus(6, 400, lo_fraction=1.0, named_lo=share)
        return np.mean([any(n in c for n in world.CLASS_NAMES) for c in captions])

    assert named(0.0) == 0.0 and named(1.0) == 1.0
    assert abs(named(None) - world.NAMED["lo"]) < 0.1
