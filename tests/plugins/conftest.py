"""Fixtures of the plugin conformance tests: the toy world of the method tests, a tiny YAML task."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

TESTS = Path(__file__).resolve().parents[1]
for folder in (TESTS / "methods", TESTS / "transports"):  # toyworld, transport_truth
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture(scope="session")
def yaml_task_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom task file with two classes and one 8x8 PNG per modality, split and class."""
    root = tmp_path_factory.mktemp("yaml-task")
    for modality in ("hi", "lo"):
        for split in ("train", "val", "test"):
            for k, cls in enumerate(("round", "spiky")):
                folder = root / modality / split / cls
                folder.mkdir(parents=True)
                Image.new("RGB", (8, 8), (40 * k, 100, 200)).save(folder / "a.png")
    spec = root / "task.yaml"
    spec.write_text(
        "name: tiny\nclass_names: [round, spiky]\nmodalities: {hi: colour photo, lo: grey scan}\n"
        "data: {hi: hi, lo: lo}\n",
        encoding="utf-8",
    )
    return spec
