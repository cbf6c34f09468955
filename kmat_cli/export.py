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
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file

from kmat_cli import __version__, atomic, datafiles
from kmat_cli.api import MODALITIES
from kmat_cli.errors import UsageError

if TYPE_CHECKING:
    from kmat_cli.contracts import Backbone, Task
    from kmat_cli.methods.base import Method

PROMPTS_FORMAT = "kmat.prompts/v1"


@dataclass(frozen=True)
class Prompts:
    """A read ``prompts.safetensors``: embeddings per modality, class names, scale, metadata."""

    embeddings: dict[str, torch.Tensor]
    class_names: list[str]
    logit_scale: float
    backbone: str
    preprocess: dict[str, Any]
    metadata: dict[str, str]

    def __repr__(self) -> str:
        shapes = ", ".join(f"{m}: {tuple(e.shape)}" for m, e in self.embeddings.items())
        names = ", ".join(self.class_names[:3]) + (", ..." if len(self.class_names) > 3 else "")
        return (
            f"Prompts({len(self.class_names)} classes [{names}], embeddings {{{shapes}}}, "
            f"backbone {self.backbone!r}, logit_scale {self.logit_scale:g})"
        )

    def logits(self, image_features: torch.Tensor, modality: str = "lo") -> torch.Tensor:
        """``logit_scale * normalize(f) @ E_modality^T``."""
        f = F.normalize(image_features.float(), dim=-1)
        return self.logit_scale * f @ self.embeddings[modality].to(f.device).t()


def prompt_file_content(
    method: Method,
    backbone: Backbone,
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
    method: Method,
    backbone: Backbone,
    *,
    task: Task,
    backbone_config: Mapping[str, Any] | None = None,
    user_named: bool = False,
) -> Path:
    """Write ``prompts.safetensors`` for ``method`` trained on ``task`` (atomically); returns the path.
    ``backbone_config``: the run config's ``backbone`` section, stored as ``kmat.backbone_config``;
    ``user_named``: ``path`` is the user's ``-o`` rather than the run's own file (:mod:`kmat_cli.atomic`)."""
    tensors, metadata = prompt_file_content(
        method,
        backbone,
        task=task.name,
        class_names=list(task.class_names),
        modalities=task.modalities,
        backbone_config=backbone_config,
    )
    atomic.write_with(
        path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata), user_named=user_named
    )
    return Path(path)


MAX_LOGIT_SCALE = 1000.0  # CLIP models clamp theirs at 100; anything far above is a broken file


def metadata_json(path: Path, metadata: Mapping[str, str], key: str, default: str | None = None) -> Any:
    """``metadata[key]`` parsed as JSON; a missing key (without ``default``) or bad JSON names the key."""
    text = metadata.get(key, default)
    if text is None:
        raise UsageError(f"{path}: incomplete kmat metadata (no {key}); export the prompts again")
    return datafiles.parse_json(
        text, f"{path}: incomplete kmat metadata ({key})", hint="export the prompts again"
    )


def checked_class_names(path: Path, metadata: Mapping[str, str]) -> list[str]:
    """``kmat.class_names``: a non-empty JSON list of distinct, non-empty, UTF-8-encodable strings."""
    names = metadata_json(path, metadata, "kmat.class_names")
    key = "kmat.class_names"
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise UsageError(
            f"{path}: {key} must be a non-empty JSON list of non-empty strings, got {names!r:.80}"
        )
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(f"{path}: {key} names {twice!r:.80} more than once")
    for name in names:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UsageError(f"{path}: {key} holds {name!r:.80}, which is not valid Unicode text") from exc
    return names


def _logit_scale(path: Path, metadata: Mapping[str, str]) -> float:
    """``kmat.logit_scale``: a number with 0 < s <= :data:`MAX_LOGIT_SCALE`."""
    key = "kmat.logit_scale"
    if key not in metadata:
        raise UsageError(f"{path}: incomplete kmat metadata (no {key}); export the prompts again")
    try:
        scale = float(metadata[key])
    except ValueError as exc:
        raise UsageError(f"{path}: {key} is not a number ({metadata[key]!r:.40})") from exc
    if not (math.isfinite(scale) and 0 < scale <= MAX_LOGIT_SCALE):
        raise UsageError(f"{path}: {key} is {scale!r}; it must be a number with 0 < s <= {MAX_LOGIT_SCALE:g}")
    return scale


def _check_tensors(
    path: Path, tensors: Mapping[str, torch.Tensor], n_classes: int, metadata: Mapping[str, str]
) -> None:
    """Every tensor floating point and finite; each ``text_embeddings.<m>`` (n_classes x D), D equal to
    ``kmat.embed_dim`` where given, every row of finite, non-zero norm."""
    not_float = sorted(k for k, v in tensors.items() if not v.is_floating_point())
    if not_float:
        kinds = ", ".join(f"{k} ({str(tensors[k].dtype).removeprefix('torch.')})" for k in not_float)
        raise UsageError(f"{path}: {kinds} must hold floating-point numbers; export the prompts again")
    bad = [k for k, v in tensors.items() if not bool(torch.isfinite(v).all())]
    if bad:
        raise UsageError(f"{path}: {', '.join(sorted(bad))} hold NaN or inf values; export the prompts again")
    embeddings = {k: v for k, v in tensors.items() if k.startswith("text_embeddings.")}
    if not embeddings:
        raise UsageError(f"{path}: no text_embeddings.<modality> tensor; export the prompts again")
    for key, emb in sorted(embeddings.items()):
        if emb.dim() != 2 or emb.shape[0] != n_classes:
            raise UsageError(
                f"{path}: {key} has shape {tuple(emb.shape)}, expected ({n_classes}, D) for {n_classes} classes"
            )
        norms = emb.float().norm(dim=-1)
        rows = [i for i, n in enumerate(norms.tolist()) if not (math.isfinite(n) and n > 0)]
        if rows:
            raise UsageError(
                f"{path}: {key} rows {rows[:5]} have zero or non-finite norm; export the prompts again"
            )
    dim = metadata.get("kmat.embed_dim")
    if dim is not None and not (dim.isdigit() and int(dim) > 0):
        raise UsageError(f"{path}: kmat.embed_dim is {dim!r:.40}, not a positive integer")


def read_prompts(path: str | Path) -> Prompts:
    """Read and check a ``prompts.safetensors``; a one-line UsageError naming the file and the key for
    anything else: a missing or malformed key, class names that are not distinct non-empty strings, a
    logit scale outside ``0 < s <= 1000``, tensors that are not floating point or hold NaN/inf, embeddings
    that are not (classes x D) or have a row of zero norm."""
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
    class_names = checked_class_names(path, metadata)
    logit_scale = _logit_scale(path, metadata)
    _check_tensors(path, tensors, len(class_names), metadata)
    preprocess = metadata_json(path, metadata, "kmat.preprocess", default="{}")
    if not isinstance(preprocess, dict):
        raise UsageError(f"{path}: kmat.preprocess must be a JSON object, got {preprocess!r:.80}")
    return Prompts(
        embeddings={
            m: tensors[f"text_embeddings.{m}"] for m in MODALITIES if f"text_embeddings.{m}" in tensors
        },
        class_names=class_names,
        logit_scale=logit_scale,
        backbone=metadata.get("kmat.backbone", ""),
        preprocess=preprocess,
        metadata=metadata,
    )
