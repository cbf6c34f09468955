"""The phantom backbone's architecture and files: an open_clip ``CLIP`` built from a config dict.

Image tower: open_clip's ``ModifiedResNet`` (layers 1-1-1-1, width 16) at 32x32 px with attention
pooling; text tower: open_clip's native ``TextTransformer`` (2 layers, width 96, 4 heads, causal mask,
``argmax`` pooling at the end token, which :class:`~kmat.backbones.phantom.tokenizer.WordTokenizer` gives the
highest id); joint embedding size 128. The shipped files, next to this module:

* ``phantom_config.json``: ``{"model_cfg": <CLIP kwargs>, "preprocess": <preprocess spec>}``;
* ``phantom_vocab.json``: the tokenizer's vocabulary and context length;
* ``phantom.safetensors``: the weights (float16; loaded into a float32 model).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kmat_cli.api import UsageError, read_json

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "phantom.safetensors"
CONFIG = HERE / "phantom_config.json"
VOCAB = HERE / "phantom_vocab.json"

IMAGE_SIZE = 32
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
PREPROCESS_SPEC: dict[str, Any] = {
    "image_size": IMAGE_SIZE,
    "mean": list(MEAN),
    "std": list(STD),
    "resize": "shortest",
    "interpolation": "bicubic",
}


def model_config(vocab_size: int, context_length: int = 64) -> dict[str, Any]:
    """The keyword arguments of ``open_clip.model.CLIP`` for the phantom backbone."""
    return {
        "embed_dim": 128,
        "vision_cfg": {"layers": [1, 1, 1, 1], "width": 16, "head_width": 32, "image_size": IMAGE_SIZE},
        "text_cfg": {
            "context_length": context_length,
            "vocab_size": vocab_size,
            "width": 96,
            "heads": 4,
            "layers": 2,
            "pool_type": "argmax",
        },
    }


def build(model_cfg: dict[str, Any], *, vision_only: bool = False) -> nn.Module:
    """A randomly initialised ``CLIP`` from ``model_cfg``, or only its image tower (``vision_only``), as a
    module with ``visual``, ``logit_scale`` and ``encode_image``."""
    from open_clip.model import CLIP, _build_vision_tower

    if not vision_only:
        return CLIP(**model_cfg)
    from kmat.backbones.open_clip import VisionOnly

    visual = _build_vision_tower(model_cfg["embed_dim"], model_cfg["vision_cfg"])
    return VisionOnly(visual, torch.tensor(0.0))


def write_random(folder: str | Path, *, words: int, context_length: int, seed: int) -> Path:
    """A stand-in of the shipped backbone in ``folder``: its config, a vocabulary of ``words`` placeholder
    words (``w0``, ``w1``, ...; the tokenizer adds 4 special tokens) and the architecture's weights drawn
    with ``torch.manual_seed(seed)``. Returns the weights path (the other two files sit beside it)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model_config(vocab_size=words + 4, context_length=context_length)
    (folder / CONFIG.name).write_text(json.dumps({"model_cfg": cfg, "preprocess": PREPROCESS_SPEC}))
    vocab = {"context_length": context_length, "vocab": [f"w{i}" for i in range(words)]}
    (folder / VOCAB.name).write_text(json.dumps(vocab))
    torch.manual_seed(seed)
    net = build(cfg)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / WEIGHTS.name))
    return folder / WEIGHTS.name


def preprocess_transform() -> Any:
    """PIL image -> (3, 32, 32) tensor: RGB, bicubic resize of the shortest side, centre crop, normalise
    (open_clip's own eval transform for :data:`PREPROCESS_SPEC`)."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    cfg = PreprocessCfg(size=(IMAGE_SIZE, IMAGE_SIZE), mean=MEAN, std=STD, interpolation="bicubic")
    return image_transform_v2(cfg, is_train=False)


def pixels_to_input(pixels: torch.Tensor) -> torch.Tensor:
    """(N, 32, 32, 3) uint8 -> (N, 3, 32, 32) normalised float: what :func:`preprocess_transform` gives
    for a 32x32 image (its resize and crop are then the identity)."""
    x = pixels.permute(0, 3, 1, 2).float().div(255)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def weights_hash(path: str | Path) -> str:
    """The first 10 hex digits of the SHA-256 of a weights file (part of the backbone id)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:10]


def read_config(path: str | Path = CONFIG) -> dict[str, Any]:
    path = Path(path)
    try:
        raw = read_json(path)
        return {"model_cfg": raw["model_cfg"], "preprocess": raw.get("preprocess", PREPROCESS_SPEC)}
    except (AttributeError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a phantom backbone config ({type(exc).__name__}: {exc})") from exc


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a safetensors state dict into ``model`` (float16 values are cast to the model's dtype).

    A vision-only model takes the ``visual.*`` tensors and ``logit_scale``."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: phantom weights not found; run `make phantom-backbone` to rebuild them")
    state = load_file(str(path))
    wanted = model.state_dict().keys()
    state = {k: v for k, v in state.items() if k in wanted}
    missing = [k for k in wanted if k not in state]
    if missing:
        raise UsageError(f"{path}: weights lack {len(missing)} tensors of the model (e.g. {missing[0]})")
    model.load_state_dict(state, strict=True)
