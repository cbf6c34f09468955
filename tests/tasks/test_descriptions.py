"""The shipped hand-written descriptions: format, coverage, size, no duplicates, modality-specific."""

from __future__ import annotations

import json

import pytest

from kmat_cli.api import DESCRIPTIONS_FORMAT, MODALITIES, load_descriptions
from kmat_cli.registry import get

TASKS = ["skin1", "skin2", "chest", "breast"]


@pytest.mark.parametrize("name", TASKS)
def test_descriptions_cover_every_class_and_modality(name: str) -> None:
    task_cls = get("tasks", name)
    path = task_cls.descriptions_file()
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert raw["format"] == DESCRIPTIONS_FORMAT and raw["provenance"]["source"] == "hand-written"
    loaded = load_descriptions(path, task_cls.class_names, MODALITIES)
    assert task_cls().descriptions == loaded
    for modality in MODALITIES:
        assert set(loaded[modality]) == set(task_cls.class_names)
        seen: set[str] = set()
        for cls, texts in loaded[modality].items():
            assert len(texts) >= 20, (cls, modality)
            assert len(set(texts)) == len(texts), (cls, modality)
            assert not seen & set(texts), (cls, modality)  # no sentence shared between classes
            seen |= set(texts)
            assert all(10 <= len(t) <= 130 for t in texts)  # short, one visual statement each
    for cls in task_cls.class_names:  # modality-specific: the two lists have nothing in common
        assert not set(loaded["hi"][cls]) & set(loaded["lo"][cls])


def test_class_names_and_modalities_are_readable_words() -> None:
    assert get("tasks", "chest").class_names == ["COVID-19 pneumonia", "common pneumonia", "normal lungs"]
    assert get("tasks", "breast").modalities == {"hi": "mammography", "lo": "breast ultrasound"}
    assert get("tasks", "skin1").class_names == [
        "actinic keratosis", "basal cell carcinoma", "melanoma", "melanocytic nevus",
        "squamous cell carcinoma", "seborrheic keratosis",
    ]  # fmt: skip
    for name in TASKS:
        task_cls = get("tasks", name)
        assert task_cls.config == {"backbone": {"name": "biomedclip"}}
        assert set(task_cls().modalities) == set(MODALITIES)
