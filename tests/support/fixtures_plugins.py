"""Fixtures of the plugin conformance tests: a tiny YAML task."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image


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
