"""Fixtures of the user-experience tests: one short phantom run (trained through the Python API), its
exported prompts and a folder of phantom low-end test images beside them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from short_runs import SHORT


@pytest.fixture(scope="session")
def phantom_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import kmat

    return kmat.train(
        task="phantom", method="coop", seed=3, out=tmp_path_factory.mktemp("ux") / "runs", **SHORT
    ).path


@pytest.fixture(scope="session")
def phantom_prompts(phantom_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<tmp>/prompts.safetensors`` exported from :func:`phantom_run`, with ``<tmp>/images/`` holding 12
    phantom low-end test images."""
    from kmat_cli import registry, workflow

    folder = tmp_path_factory.mktemp("deploy")
    images = folder / "images"
    images.mkdir()
    for sample in registry.get("tasks", "phantom")().split("lo", "test")[:12]:
        shutil.copy(sample.path, images / f"{sample.label}-{sample.path.name}")
    return workflow.export_run(phantom_run, folder / "prompts.safetensors")
