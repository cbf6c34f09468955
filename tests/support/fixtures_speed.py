"""Shared set-up of the speed-benchmark tests: benchmarks/ on sys.path (its scripts import each other by name,
as they do when run), and a toy-size BiomedCLIP with the chest task's parts and a K-MaT trainer."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from repo_paths import REPO

BENCHMARKS = str(REPO / "benchmarks")
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)


@pytest.fixture(scope="session")
def speed_toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    """(backbone, parts, method, trainer, features, labels): a toy-size BiomedCLIP (ViT + BERT + MLP
    projection), the chest task's parts around it, a K-MaT trainer and one batch of its cached features."""
    import torch
    from _common import biomedclip
    from speed_parts import build_method, build_parts, shots, train_cfg

    from kmat_cli.train import Trainer

    backbone = biomedclip(tmp_path_factory.mktemp("toy"), tiny=True)
    parts = build_parts(backbone, torch.device("cpu"))
    method = build_method(parts, "kmat")
    feats, labels = shots(parts, torch.device("cpu"))
    trainer = Trainer(method, feats, labels, train_cfg(parts, 50), device=torch.device("cpu"), progress=False)
    return backbone, parts, method, trainer, feats[:4], labels[:4]
