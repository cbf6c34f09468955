"""Writing ``classifier.onnx``: preprocessing its metadata cannot describe is refused, and a backbone whose
preprocessing is not the one its spec describes is not exported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kmat_cli.errors import UsageError
from kmat_cli.onnx_export import check_preprocess, write_onnx

pytest.importorskip("onnx")


def test_preprocessing_the_metadata_cannot_describe_is_refused() -> None:
    spec = {
        "image_size": 32,
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
        "resize": "shortest",
        "interpolation": "bicubic",
    }
    assert check_preprocess(spec, "x")["crop"] == "center"
    assert check_preprocess({**spec, "resize": "squash"}, "x")["crop"] == "none"
    for bad in ({"resize": "longest"}, {"image_size": [32, 48]}, {"std": [0.25, 0, 0.25]}, {"mean": [0.5]}):
        with pytest.raises(UsageError, match=r"x: kmat\.preprocess"):
            check_preprocess({**spec, **bad}, "x")


def test_a_backbone_whose_preprocessing_differs_from_its_spec_is_not_exported(tmp_path: Path) -> None:
    from kmat.backbones.phantom import PhantomBackbone

    tower = PhantomBackbone(vision_only=True)
    tower.preprocess_spec = {
        **tower.preprocess_spec,
        "interpolation": "nearest",
    }  # says one thing, does another
    meta = {"kmat.logit_scale": "10.0"}
    with pytest.raises(UsageError, match="its preprocessing is not the one its preprocess_spec describes"):
        write_onnx(tmp_path / "c.onnx", tower, torch.eye(3, tower.embed_dim), meta)
    assert not (tmp_path / "c.onnx").exists()
