"""Fixtures of the predict tests: a tiny open_clip model with saved weights, its prompts file, an image zoo
(see ``predict_helpers``); a phantom-backbone prompts file of two classes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from faults import two_class_prompts

if TYPE_CHECKING:
    from predict_helpers import Model


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    import numpy as np
    import torch
    from kmat.backbones.open_clip import OpenCLIP
    from open_clip.model import CLIP
    from predict_helpers import WEIGHTS, Model, native_config, write_prompts
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("toy-clip")
    config = native_config()
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(123)
    clip = CLIP(**config["model_cfg"]).eval()
    with torch.no_grad():
        clip.logit_scale.fill_(float(np.log(30.0)))
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(folder / WEIGHTS))
    tower = OpenCLIP(model=f"local-dir:{folder}", vision_only=True)  # only for its id and preprocess spec
    g = torch.Generator().manual_seed(7)
    dim = config["model_cfg"]["embed_dim"]
    embeddings = {
        m: torch.nn.functional.normalize(torch.randn(3, dim, generator=g), dim=-1) for m in ("hi", "lo")
    }
    prompts = write_prompts(
        folder.parent / "toy-prompts.safetensors",
        embeddings,
        backbone_id=tower.id,
        embed_dim=dim,
        logit_scale=30.0,
        preprocess=tower.preprocess_spec,
        backbone_config={"name": "open_clip", "model": f"local-dir:{folder}", "pretrained": None},
    )
    return Model(folder, config, clip, prompts, embeddings, 30.0, tower.id)


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from predict_helpers import make_zoo

    root = tmp_path_factory.mktemp("zoo")
    return root, make_zoo(root)


@pytest.fixture(scope="session")
def phantom_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped phantom weights, else stand-in weights of the same architecture (seeded random init)."""
    from kmat.backbones.phantom import model as files

    if files.WEIGHTS.is_file():
        return files.WEIGHTS
    folder = tmp_path_factory.mktemp("phantom")
    return files.write_random(folder, words=8, context_length=16, seed=5)


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    """A phantom-backbone prompts file of two classes in this test's folder (``faults.two_class_prompts``)."""
    return two_class_prompts(tmp_path)
