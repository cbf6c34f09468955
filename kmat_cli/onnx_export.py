"""``classifier.onnx``: a run's classifier of one modality as a single self-contained ONNX model.

Input ``pixels``: float32 (N, 3, S, S), images preprocessed as the metadata's ``kmat.preprocess`` says
(N is a dynamic axis). Output ``probabilities``: float32 (N, K), with the image tower f, the class
embeddings E (K x D, L2-normalised) of the modality and the logit scale s baked into the graph:

    probabilities = softmax(s * normalize(f(pixels)) @ E^T)

Metadata (the model's ``metadata_props``, all strings): the keys of ``prompts.safetensors``
(:mod:`kmat_cli.export`: ``kmat.class_names``, ``kmat.backbone``, ``kmat.backbone_config``,
``kmat.embed_dim``, ``kmat.logit_scale``, ``kmat.task``, ``kmat.method``, ``kmat.modalities``,
``kmat.version``), and ``kmat.format`` (``kmat.onnx/v1``), ``kmat.modality`` (whose embeddings),
``kmat.preprocess`` (JSON: ``image_size`` S, ``mean``, ``std``, ``interpolation`` (bicubic, bilinear or
nearest), ``resize`` (``shortest``: the shorter side to S, then ``crop`` ``center`` to S x S; ``squash``: to
S x S, ``crop`` ``none``)), the run's provenance ``kmat.run`` (its folder name), ``kmat.seed`` and
``kmat.config_sha256`` (of its ``config.yaml``).

Exported with torch's TorchScript-based ONNX exporter (no ``onnxscript`` needed), opset :data:`OPSET`; the
written model is run once through onnxruntime and must reproduce torch's probabilities within
:data:`EXPORT_TOLERANCE`. Needs the ``onnx`` extra (``pip install 'kmat[onnx]'``).
"""

from __future__ import annotations

import importlib
import io
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from kmat_cli import atomic
from kmat_cli.errors import RuntimeFailure, UsageError

if TYPE_CHECKING:
    from kmat_cli.contracts import Backbone

__all__ = [
    "INPUT",
    "ONNX_FORMAT",
    "OUTPUT",
    "check_preprocess",
    "onnx_metadata",
    "preprocess_transform",
    "require",
    "write_onnx",
]

ONNX_FORMAT = "kmat.onnx/v1"
INPUT, OUTPUT = "pixels", "probabilities"
OPSET = 17
EXPORT_TOLERANCE = 1e-4  # max |p_onnx - p_torch| accepted on the export's check batch
CROPS = {"shortest": "center", "squash": "none"}  # resize mode -> the crop after it
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")


def require(module: str) -> Any:
    """Import ``module`` of the ``onnx`` extra; a one-line UsageError (exit 2) saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(
            f"ONNX support needs the '{module}' package, which is not installed: pip install 'kmat[onnx]'"
        ) from exc


def check_preprocess(spec: Any, source: str | Path, key: str = "kmat.preprocess") -> dict[str, Any]:
    """``spec`` (a backbone's ``preprocess_spec`` or a model's ``kmat.preprocess``) checked and completed
    with its ``crop``: a square ``image_size`` (a positive int), three ``mean`` and three positive ``std``
    numbers, an interpolation of :data:`INTERPOLATIONS`, a resize of :data:`CROPS`. A one-line UsageError
    naming ``source`` and ``key`` otherwise."""

    def bad(what: str) -> UsageError:
        return UsageError(
            f"{source}: {key} {what}; ONNX export supports square images resized 'shortest' or 'squash'"
        )

    if not isinstance(spec, Mapping):
        raise bad(f"is not a JSON object ({spec!r:.60})")
    size = spec.get("image_size")
    if isinstance(size, list) and len(size) == 2 and size[0] == size[1]:
        size = size[0]
    if not (isinstance(size, int) and not isinstance(size, bool) and size > 0):
        raise bad(f"has image_size {size!r:.40}, not a positive whole number")
    stats = {}
    for name in ("mean", "std"):
        values = spec.get(name)
        if not (
            isinstance(values, list) and len(values) == 3 and all(isinstance(v, (int, float)) for v in values)
        ):
            raise bad(f"has {name} {values!r:.60}, not a list of 3 numbers")
        stats[name] = [float(v) for v in values]
    if not all(np.isfinite(stats["mean"])) or not all(np.isfinite(s) and s > 0 for s in stats["std"]):
        raise bad("has a non-finite mean or a std that is not positive")
    if spec.get("interpolation") not in INTERPOLATIONS:
        raise bad(
            f"has interpolation {spec.get('interpolation')!r:.40}, not one of {', '.join(INTERPOLATIONS)}"
        )
    if spec.get("resize") not in CROPS:
        raise bad(f"has resize {spec.get('resize')!r:.40}, not one of {', '.join(CROPS)}")
    return {
        "image_size": size,
        **stats,
        "interpolation": spec["interpolation"],
        "resize": spec["resize"],
        "crop": CROPS[spec["resize"]],
    }


def preprocess_transform(spec: Mapping[str, Any]) -> Any:
    """The PIL RGB image -> (3, S, S) float transform a checked ``spec`` describes: resize (shorter side to
    S then a centre crop, or straight to S x S), ``ToTensor`` (/ 255), ``Normalize(mean, std)``; for a
    backbone with open_clip's eval transform it gives the same values (checked on export)."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    size = int(spec["image_size"])
    mode = InterpolationMode(spec["interpolation"])
    if spec["resize"] == "shortest":
        resize = [Resize(size, interpolation=mode), CenterCrop(size)]
    else:
        resize = [Resize((size, size), interpolation=mode)]
    return Compose([*resize, ToTensor(), Normalize(spec["mean"], spec["std"])])


def _check_transform(backbone: Any, spec: Mapping[str, Any]) -> None:
    """The backbone's own ``preprocess`` must equal :func:`preprocess_transform` of ``spec`` on probe images
    (landscape and portrait, random pixels), so the metadata describes what the embeddings were made with."""
    from PIL import Image

    rng = np.random.default_rng(0)
    mine = preprocess_transform(spec)
    size = int(spec["image_size"])
    for shape in ((size + 13, 2 * size + 7, 3), (2 * size + 7, size + 13, 3)):
        img = Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), "RGB")
        theirs = backbone.preprocess(img)
        if tuple(theirs.shape) != (3, size, size) or not torch.allclose(theirs, mine(img), atol=1e-5):
            raise UsageError(
                f"backbone {backbone.id}: its preprocessing is not the one its preprocess_spec describes "
                f"({json.dumps(dict(spec), sort_keys=True)}); it cannot be exported to ONNX"
            )


class _Head(torch.nn.Module):
    """The traced graph: the backbone's image tower, normalisation, scaled similarities, softmax."""

    backbone: Backbone
    embeddings: torch.Tensor

    def __init__(self, backbone: Any, embeddings: torch.Tensor, logit_scale: float) -> None:
        super().__init__()
        self.backbone = backbone
        if isinstance(getattr(backbone, "model", None), torch.nn.Module):
            self.tower = backbone.model  # registered, so its weights become the graph's initializers
        self.register_buffer("embeddings", F.normalize(embeddings.float(), dim=-1))
        self.logit_scale = float(logit_scale)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        features = F.normalize(self.backbone.encode_image(pixels).float(), dim=-1)
        return torch.softmax(self.logit_scale * features @ self.embeddings.t(), dim=-1)


def onnx_metadata(
    prompt_metadata: Mapping[str, str],
    modality: str,
    preprocess: Mapping[str, Any],
    provenance: Mapping[str, Any],
) -> dict[str, str]:
    """The model's metadata_props: the prompts file's keys, then format, modality, the checked preprocessing
    and ``kmat.<key>`` for each provenance entry (strings as they are, anything else as JSON)."""
    meta = {k: v for k, v in prompt_metadata.items() if k != "kmat.format"}
    meta.update(
        {
            "kmat.format": ONNX_FORMAT,
            "kmat.modality": modality,
            "kmat.preprocess": json.dumps(dict(preprocess), sort_keys=True),
        }
    )
    meta.update({f"kmat.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in provenance.items()})
    return meta


def _export_bytes(head: _Head, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and tracer warnings
        torch.onnx.export(
            head,
            (example,),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to a binary file object too
            dynamo=False,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
        )
    return buffer.getvalue()


def _check_export(data: bytes, head: _Head, size: int) -> None:
    """Run the model through onnxruntime on a seeded batch of 3; RuntimeFailure past the tolerance."""
    ort = require("onnxruntime")
    pixels = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = head(pixels).numpy()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT], {INPUT: pixels.numpy()})[0]
    gap = float(np.abs(got - expected).max())
    if not gap <= EXPORT_TOLERANCE:
        raise RuntimeFailure(
            f"the ONNX export differs from torch by {gap:.3g} (more than {EXPORT_TOLERANCE:g}); "
            "the backbone's image tower uses an operation the exporter does not reproduce"
        )


def write_onnx(
    path: str | Path,
    backbone: Any,
    embeddings: torch.Tensor,
    prompt_metadata: Mapping[str, str],
    *,
    modality: str = "lo",
    provenance: Mapping[str, Any] | None = None,
    user_named: bool = False,
) -> Path:
    """Write ``classifier.onnx`` (atomically) for ``backbone`` (on the CPU) and the (K, D) ``embeddings``
    of ``modality``; ``prompt_metadata``: the string metadata of the run's prompts file
    (:func:`kmat_cli.export.prompt_file_content`), which holds the logit scale; ``user_named``: ``path`` is
    the user's ``-o`` rather than the run's own file (:mod:`kmat_cli.atomic`). Returns the path."""
    onnx = require("onnx")
    require("onnxruntime")
    spec = check_preprocess(backbone.preprocess_spec, f"backbone {backbone.id}", key="preprocess_spec")
    _check_transform(backbone, spec)
    head = _Head(backbone, embeddings.detach().cpu(), float(prompt_metadata["kmat.logit_scale"])).eval()
    size = int(spec["image_size"])
    data = _export_bytes(head, torch.zeros(2, 3, size, size))
    _check_export(data, head, size)
    model = onnx.load_from_string(data)
    for key, value in onnx_metadata(prompt_metadata, modality, spec, provenance or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    atomic.write_bytes(path, model.SerializeToString(), user_named=user_named)
    return Path(path)
