"""A tiny, fully controlled backbone and task for method and trainer tests.

ToyBackbone: word-level tokens hashed into a frozen embedding table (W = 16); the text tower is
positional embeddings + a frozen linear layer + tanh, mean-pooled and projected to D = 8, so context
vectors change the output differentiably and their position matters. The image tower flattens a 4x4 RGB
picture and projects it to D. ToyTask: 3 classes, images written as PNG files under ``root``; it records
every split it is asked for (``ToyTask.requested``) so tests can check what training touched.
Both are registered through the ``module:attr`` escape hatch (``toyworld:ToyBackbone``).
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from kmat_cli.api import Backbone, Sample, Task

VOCAB, WIDTH, DIM, MAX_LEN = 97, 16, 8, 32


def _ids(text: str) -> list[int]:
    words = text.lower().replace(".", " .").split()
    return [2 + zlib.crc32(w.encode()) % (VOCAB - 2) for w in words]


class _Towers(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.token_embedding = nn.Embedding(VOCAB, WIDTH)
        self.token_embedding.weight.data = torch.randn(VOCAB, WIDTH, generator=g) * 0.5
        self.positional = nn.Parameter(torch.randn(MAX_LEN, WIDTH, generator=g) * 0.1)
        self.mix = nn.Linear(WIDTH, WIDTH)
        self.proj = nn.Linear(WIDTH, DIM)
        self.visual = nn.Linear(48, DIM)
        for lin in (self.mix, self.proj, self.visual):
            lin.weight.data = torch.randn(lin.weight.shape, generator=g) / lin.weight.shape[1] ** 0.5
            lin.bias.data = torch.randn(lin.bias.shape, generator=g) * 0.1
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(10.0))))


class ToyBackbone(Backbone):
    """A toy frozen CLIP-like backbone (see the module docstring)."""

    def __init__(self, *, device: str = "cpu") -> None:
        self.model = _Towers()
        self.model.requires_grad_(False)
        self.model.eval()
        self.tokenizer = _ids
        self.id = "toy-backbone-v1"
        self.embed_dim, self.token_width = DIM, WIDTH
        self.logit_scale = float(self.model.logit_scale.exp())
        self.preprocess_spec = {"image_size": 4, "mean": [0.5] * 3, "std": [0.5] * 3, "resize": "bilinear"}
        self.device = torch.device("cpu")
        self.to(device)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        arr = np.asarray(image.convert("RGB").resize((4, 4), Image.BILINEAR), dtype=np.float32) / 255.0
        return (torch.from_numpy(arr).permute(2, 0, 1) - 0.5) / 0.5

    def to(self, device: str | torch.device) -> ToyBackbone:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    @torch.no_grad()
    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.visual(pixels.to(self.device).flatten(1).float()), dim=-1)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        with torch.no_grad():
            return self.encode_prompts(torch.zeros(len(texts), 0, WIDTH), texts)

    def token_embeddings(self, text: str) -> torch.Tensor:
        ids = torch.tensor(_ids(text), device=self.device)
        return self.model.token_embedding(ids).detach().clone()

    def encode_prompts(self, ctx: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        m = self.model
        out = []
        for p, text in enumerate(texts):
            ids = torch.tensor([0, *_ids(text), 1], device=self.device)
            emb = m.token_embedding(ids)
            x = torch.cat([emb[:1], ctx[p].to(self.device, emb.dtype), emb[1:]])
            x = x + m.positional[: x.shape[0]]
            out.append(m.proj(torch.tanh(m.mix(x)).mean(0)))
        return F.normalize(torch.stack(out), dim=-1)


CLASSES = ["alpha", "beta", "gamma"]
_COLOURS = np.array([[220, 40, 40], [40, 200, 60], [50, 60, 230]], dtype=np.float32)


class ToyTask(Task):
    """3 classes in two modalities; ``hi`` images are the class colour, ``lo`` ones a grey noisy version."""

    name = "toy"
    class_names: ClassVar[list[str]] = CLASSES
    modalities: ClassVar[dict[str, str]] = {"hi": "sharp scan", "lo": "blurry photo"}
    requested: ClassVar[list[tuple[str, str]]] = []
    config: ClassVar[dict[str, Any]] = {}

    def __init__(self, *, root: str = "", per_class: int = 12) -> None:
        default = Path(os.environ.get("KMAT_CACHE") or tempfile.gettempdir()) / "toy-data"
        self.root = Path(root) if root else default
        self.per_class = per_class

    @property
    def descriptions(self) -> dict[str, dict[str, list[str]]]:
        return {
            "hi": {c: [f"a sharp {c} spot", f"bright {c} region", f"clear {c} pattern"] for c in CLASSES},
            "lo": {c: [f"a faint {c} shadow", f"grey {c} blur"] for c in CLASSES},
        }

    def split(self, modality: str, split: str) -> list[Sample]:
        ToyTask.requested.append((modality, split))
        folder = self.root / f"{modality}-{split}"
        offset = {"train": 0, "val": 1, "test": 2}[split] * 1000 + {"hi": 0, "lo": 1}[modality] * 10000
        samples = []
        for k in range(len(CLASSES)):
            for i in range(self.per_class):
                path = folder / f"{k}-{i}.png"
                if not path.is_file():
                    rng = np.random.default_rng(offset + 100 * k + i)
                    img = _COLOURS[k] + rng.normal(0, 40, (4, 4, 3))
                    if modality == "lo":
                        img = img.mean(-1, keepdims=True).repeat(3, -1) * 0.5 + rng.normal(60, 30, (4, 4, 3))
                    folder.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
                samples.append(Sample(path=path, label=k))
        return samples


def setup(**kw: Any):
    """A MethodSetup on the toy backbone and task (``kw`` overrides fields, e.g. transport)."""
    from kmat_cli.methods.base import MethodSetup

    task = ToyTask()
    fields = dict(
        backbone=ToyBackbone(),
        class_names=list(task.class_names),
        modalities=dict(task.modalities),
        descriptions=task.descriptions,
    )
    fields.update(kw)
    return MethodSetup(**fields)


def train_argv(tmp_path: Path, *, epochs: int, shots: int) -> list[str]:
    """``kmat train`` arguments for the toy task and backbone: data under ``tmp_path/data``, run folders
    under ``tmp_path/runs``."""
    return [
        "train",
        "--task",
        "toyworld:ToyTask",
        "--backbone",
        "toyworld:ToyBackbone",
        "--epochs",
        str(epochs),
        "--shots",
        str(shots),
        "--out",
        str(tmp_path / "runs"),
        "--set",
        f"task.root={tmp_path / 'data'}",
    ]


TOY = {"task.name": "toyworld:ToyTask", "backbone.name": "toyworld:ToyBackbone"}


def toy_cfg(tmp_path: Path, *sets: str, method: str = "kmat", epochs: int = 3, shots: int = 4) -> dict:
    """A validated run config of the toy task and backbone: data under ``tmp_path/data``, runs under
    ``tmp_path/runs``."""
    from kmat_cli import config

    flags = {
        **TOY,
        "method.name": method,
        "train.epochs": epochs,
        "train.shots": shots,
        "out": str(tmp_path / "runs"),
    }
    return config.build(flags=flags, sets=[f"task.root={tmp_path / 'data'}", *sets])
