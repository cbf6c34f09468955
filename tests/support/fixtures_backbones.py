"""Fixtures of the backbone tests: open_clip models with random weights, built offline once per session; the
Hugging Face hub offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from folders import write_biomedclip_dir, write_native_dir


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1: a model not in the Hugging Face cache fails at once instead of downloading."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def native_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy native-tower open_clip ``local-dir:`` folder (no weights: seeded random init)."""
    return write_native_dir(tmp_path_factory.mktemp("native"))


@pytest.fixture(scope="session")
def tiny_biomedclip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BiomedCLIP's tower kinds (timm ViT, BERT via transformers, MLP projection) at toy size."""
    return write_biomedclip_dir(tmp_path_factory.mktemp("biomedclip-tiny"), tiny=True)


@pytest.fixture(scope="session")
def biomedclip_full(tmp_path_factory: pytest.TempPathFactory):
    """The full BiomedCLIP architecture (ViT-B/16 + BERT-base, context 256) with random weights."""
    from kmat.backbones.open_clip import BiomedCLIP

    folder = write_biomedclip_dir(tmp_path_factory.mktemp("biomedclip-full"))
    return BiomedCLIP(model=f"local-dir:{folder}")


@pytest.fixture(scope="session")
def tiny_biomedclip(tiny_biomedclip_dir: Path):
    from kmat.backbones.open_clip import BiomedCLIP

    return BiomedCLIP(model=f"local-dir:{tiny_biomedclip_dir}")
