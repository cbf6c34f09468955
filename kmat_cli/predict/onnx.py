"""``kmat predict --onnx``: a ``classifier.onnx`` (:mod:`kmat_cli.onnx_export`) run through onnxruntime.

The model already ends in class probabilities, so it stands in for the image tower of predict's pipeline
(:class:`OnnxModel`: ``preprocess``, ``device``, ``encode_image``, whose output is the probabilities) and
the classifier's ``classify`` passes them through. Decoding, batching, rows and errors are predict's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kmat_cli import threads as thread_policy
from kmat_cli.errors import UsageError
from kmat_cli.export import checked_class_names, metadata_json
from kmat_cli.onnx_export import INPUT, ONNX_FORMAT, OUTPUT, check_preprocess, preprocess_transform, require

__all__ = ["OnnxClassifier", "OnnxModel", "load_onnx_classifier"]


@dataclass
class OnnxModel:
    """An onnxruntime session of a ``classifier.onnx`` as predict's image tower: ``preprocess`` (PIL image
    -> (3, S, S), as the model's ``kmat.preprocess`` says), ``encode_image(pixels)`` -> (N, K) float32
    class probabilities."""

    session: Any
    preprocess: Any
    device: torch.device

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.detach().to("cpu", torch.float32).contiguous().numpy()
        return torch.from_numpy(self.session.run([OUTPUT], {INPUT: x})[0])


@dataclass
class OnnxClassifier:
    """A ``classifier.onnx`` as predict's classifier: the model gives the probabilities, ``classify`` keeps
    them; ``metadata`` holds the model's ``kmat.*`` strings."""

    backbone: OnnxModel
    class_names: list[str]
    modality: str
    source: Path
    metadata: dict[str, str]

    def classify(self, probabilities: torch.Tensor) -> torch.Tensor:
        """(N, K) model output -> (N, K) float32 class probabilities (on the CPU)."""
        return probabilities.float().cpu()

    def probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) preprocessed pixels -> (N, K) float32 class probabilities."""
        return self.classify(self.backbone.encode_image(pixels))


def _session(path: Path, threads: int | None) -> Any:
    """An onnxruntime CPU session with torch's thread policy (:mod:`kmat_cli.threads`)."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = thread_policy.plan(threads or 0)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: stderr is for progress and the summary
    if not path.is_file():
        raise UsageError(f"{path}: ONNX model not found" if not path.exists() else f"{path}: not a file")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own error types for files it cannot load
        detail = " ".join(str(exc).split())[:200]
        raise UsageError(f"{path}: not an ONNX model onnxruntime can load ({detail})") from exc


def _check_signature(path: Path, session: Any, size: int, n_classes: int) -> None:
    """One input ``pixels`` (N, 3, S, S) and the output ``probabilities`` (N, K) of the metadata's S, K."""
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if list(inputs) != [INPUT] or [d for d in inputs[INPUT][1:]] != [3, size, size]:
        raise UsageError(f"{path}: model input is {inputs}, expected {{'{INPUT}': [N, 3, {size}, {size}]}}")
    if OUTPUT not in outputs or outputs[OUTPUT][1:] != [n_classes]:
        raise UsageError(f"{path}: model outputs are {outputs}, expected '{OUTPUT}' [N, {n_classes}]")


def load_onnx_classifier(
    path: str | Path, *, modality: str = "lo", threads: int | None = None
) -> OnnxClassifier:
    """Load and check a ``classifier.onnx``: kmat's format, its class names, its preprocessing, the input and
    output shapes they imply, the modality asked for; a one-line UsageError naming the file and the key
    otherwise (also when the ``onnx`` extra is not installed). ``threads``: onnxruntime's threads
    (None: :func:`kmat_cli.threads.plan`)."""
    path = Path(path)
    session = _session(path, threads)
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if meta.get("kmat.format") != ONNX_FORMAT:
        raise UsageError(
            f"{path}: not a {ONNX_FORMAT} model (kmat.format is {meta.get('kmat.format')!r:.40}); "
            "make one with `kmat export RUN --format onnx`"
        )
    names = checked_class_names(path, meta)
    spec = check_preprocess(metadata_json(path, meta, "kmat.preprocess"), path)
    if meta.get("kmat.modality") != modality:
        raise UsageError(
            f"{path}: the model classifies with the {meta.get('kmat.modality')!r:.20} embeddings, "
            f"not {modality!r:.20}; export the run again or drop --modality"
        )
    _check_signature(path, session, spec["image_size"], len(names))
    model = OnnxModel(session, preprocess_transform(spec), torch.device("cpu"))
    return OnnxClassifier(model, names, modality, path, meta)
