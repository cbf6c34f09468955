"""``prompts.safetensors``: the learned class embeddings, all a deployment needs besides the image tower.

Tensors: ``text_embeddings.hi`` and ``text_embeddings.lo`` (K x D, L2-normalised, float32) and the
method's learned parameters as ``context.<name>`` (float32). String metadata: ``kmat.format``
(``kmat.prompts/v1``), ``kmat.class_names`` (JSON list), ``kmat.backbone`` (backbone id),
``kmat.embed_dim``, ``kmat.logit_scale``, ``kmat.preprocess`` (JSON), ``kmat.task``, ``kmat.modalities``
(JSON), ``kmat.version``, ``kmat.method`` and ``kmat.backbone_config`` (JSON of the run config's
``backbone`` section: registry name and options, so ``kmat predict`` can build the image tower from this
file alone). Classify with the image encoder f alone:

    probs = softmax(logit_scale * normalize(f(x)) @ text_embeddings.<modality>.T)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from kmat_cli import __version__, atomic
from kmat_cli.api import MODALITIES
from kmat_cli.errors import UsageError

PROMPTS_FILE = "prompts.safetensors"
PROMPTS_FORMAT = "kmat.prompts/v1"


@dataclass
class Prompts:
    """A read ``prompts.safetensors``: embeddings per modality, class names, scale, metadata."""

    embeddings: dict[str, torch.Tensor]
    class_names: list[str]
    logit_scale: float
    backbone: str
    preprocess: dict[str, Any]
    metadata: dict[str, str]

    def logits(self, image_features: torch.Tensor, modality: str = "lo") -> torch.Tensor:
        """``logit_scale * normalize(f) @ E_modality^T``."""
        f = F.normalize(image_features.float(), dim=-1)
        return self.logit_scale * f @ self.embeddings[modality].to(f.device).t()


def prompt_file_content(
    method: Any,
    backbone: Any,
    *,
    task: str,
    class_names: list[str],
    modalities: Mapping[str, str],
    backbone_config: Mapping[str, Any] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and string metadata of ``prompts.safetensors`` for a trained ``method``."""
    method.eval()
    with torch.no_grad():
        emb = method.text_embeddings()
    tensors = {
        f"text_embeddings.{m}": F.normalize(emb[m].detach().float(), dim=-1).cpu().contiguous()
        for m in MODALITIES
    }
    for name, param in method.named_parameters():
        tensors[f"context.{name}"] = param.detach().float().cpu().contiguous().clone()
    metadata = {
        "kmat.format": PROMPTS_FORMAT,
        "kmat.class_names": json.dumps(list(class_names)),
        "kmat.backbone": str(backbone.id),
        "kmat.embed_dim": str(int(backbone.embed_dim)),
        "kmat.logit_scale": repr(float(backbone.logit_scale)),
        "kmat.preprocess": json.dumps(backbone.preprocess_spec, sort_keys=True),
        "kmat.task": task,
        "kmat.modalities": json.dumps(dict(modalities)),
        "kmat.version": __version__,
        "kmat.method": type(method).__name__,
    }
    if backbone_config is not None:
        metadata["kmat.backbone_config"] = json.dumps(dict(backbone_config), sort_keys=True)
    return tensors, metadata


def write_prompts(
    path: str | Path,
    method: Any,
    backbone: Any,
    *,
    task: Any,
    backbone_config: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``prompts.safetensors`` for ``method`` trained on ``task`` (atomically); returns the path.
    ``backbone_config``: the run config's ``backbone`` section, stored as ``kmat.backbone_config``."""
    tensors, metadata = prompt_file_content(
        method,
        backbone,
        task=task.name,
        class_names=list(task.class_names),
        modalities=task.modalities,
        backbone_config=backbone_config,
    )
    atomic.write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return Path(path)


def read_prompts(path: str | Path) -> Prompts:
    """Read and check a ``prompts.safetensors``; a one-line UsageError for anything else."""
    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (not a dict)
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: prompts file not found") from exc
    except Exception as exc:  # safetensors raises its own error types for malformed files
        raise UsageError(f"{path}: not a safetensors file ({exc})") from exc
    if metadata.get("kmat.format") != PROMPTS_FORMAT:
        raise UsageError(
            f"{path}: not a {PROMPTS_FORMAT} file (kmat.format is {metadata.get('kmat.format')!r})"
        )
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise UsageError(f"{path}: {', '.join(sorted(bad))} hold NaN or inf values; export the prompts again")
    return Prompts(
        embeddings={
            m: tensors[f"text_embeddings.{m}"] for m in MODALITIES if f"text_embeddings.{m}" in tensors
        },
        class_names=json.loads(metadata["kmat.class_names"]),
        logit_scale=float(metadata["kmat.logit_scale"]),
        backbone=metadata.get("kmat.backbone", ""),
        preprocess=json.loads(metadata.get("kmat.preprocess", "{}")),
        metadata=metadata,
    )
