"""Evaluation on both test splits: accuracy, macro-F1, their harmonic means H, confusion matrices.

High-end test images are scored against t_{.,hi}, low-end ones against t_{.,lo} (``Method.logits``;
CoCoOp conditions every image). Metrics (fractions in [0, 1]):

    accuracy = mean(pred == label)
    macro-F1 = mean over the K classes of F1_k = 2 TP_k / (2 TP_k + FP_k + FN_k)   (0 when the class is absent
               from both labels and predictions, i.e. scikit-learn's ``labels=range(K), zero_division=0``)
    H        = 2 Hi Lo / (Hi + Lo)   (0 when both are 0), for accuracy and for macro-F1 separately
    confusion[i][j] = number of test images of class i predicted as class j
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from kmat_cli.api import MODALITIES

if TYPE_CHECKING:
    from kmat_cli.contracts import Backbone, Sample
    from kmat_cli.methods.base import Method

METRICS_FORMAT = "kmat.metrics/v1"


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) counts: row = true class, column = predicted class."""
    idx = labels.long() * num_classes + preds.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(labels: torch.Tensor, preds: torch.Tensor) -> float:
    return float((labels == preds).double().mean()) if labels.numel() else 0.0


def macro_f1(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> float:
    """Mean over classes of 2 TP / (2 TP + FP + FN), 0 for a class with no labels and no predictions."""
    cm = confusion_matrix(labels, preds, num_classes).double()
    tp = cm.diag()
    denom = 2 * tp + (cm.sum(0) - tp) + (cm.sum(1) - tp)
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    return float(f1.mean())


def harmonic(hi: float, lo: float) -> float:
    """H = 2 hi lo / (hi + lo), 0 when both are 0."""
    return 2 * hi * lo / (hi + lo) if hi + lo > 0 else 0.0


@dataclass
class Evaluation:
    """Per-modality labels, predictions and metrics, and the harmonic means."""

    class_names: list[str]
    labels: dict[str, torch.Tensor] = field(default_factory=dict)
    preds: dict[str, torch.Tensor] = field(default_factory=dict)

    def modality(self, m: str) -> dict[str, Any]:
        k = len(self.class_names)
        y, p = self.labels[m], self.preds[m]
        return {
            "accuracy": accuracy(y, p),
            "macro_f1": macro_f1(y, p, k),
            "n": int(y.numel()),
            "confusion": confusion_matrix(y, p, k).tolist(),
            "correct": "".join("1" if ok else "0" for ok in (y == p).tolist()),
        }

    def metrics(self) -> dict[str, Any]:
        """The ``metrics.json`` content: ``hi``, ``lo`` (accuracy, macro_f1, n, confusion, and ``correct``:
        one character per test image in split order, "1" where it was classified right, for paired
        statistics) and ``H``."""
        per = {m: self.modality(m) for m in MODALITIES}
        return {
            "format": METRICS_FORMAT,
            "class_names": self.class_names,
            **per,
            "H": {key: harmonic(per["hi"][key], per["lo"][key]) for key in ("accuracy", "macro_f1")},
        }


def classify(method: Method, features: torch.Tensor, modality: str, batch_size: int = 256) -> torch.Tensor:
    """Class predictions (N,) of ``method`` for image ``features`` (N, D) of ``modality``, in batches."""
    out = []
    with torch.no_grad():
        if not method.image_conditioned:
            text = method.text_embeddings()[modality]
            scale = method.logit_scale
        for i in range(0, features.shape[0], batch_size):
            f = features[i : i + batch_size]
            if method.image_conditioned:
                logits = method.logits(f, modality)
            else:
                logits = scale * torch.nn.functional.normalize(f.float(), dim=-1) @ text.t()
            out.append(logits.argmax(-1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def evaluate_method(
    method: Method,
    backbone: Backbone,
    splits: Mapping[str, Sequence[Sample]],
    class_names: Sequence[str],
    *,
    batch_size: int = 256,
    progress: bool = True,
) -> Evaluation:
    """Score ``splits[m]`` (lists of :class:`~kmat_cli.api.Sample`) for the modalities m in hi, lo that
    ``splits`` has (a missing one is never read); features come from the feature cache."""
    from kmat_cli.features import image_features

    result = Evaluation(class_names=list(class_names))
    method.eval()
    device = method.device
    for m in [m for m in MODALITIES if m in splits]:
        samples = list(splits[m])
        feats = image_features(backbone, [s.path for s in samples], batch_size=batch_size, progress=progress)
        result.labels[m] = torch.tensor([s.label for s in samples], dtype=torch.long)
        result.preds[m] = classify(method, feats.to(device), m, batch_size)
    return result


def render(metrics: Mapping[str, Any], title: str = "", *, stderr: bool = False) -> None:
    """Print the Hi / Lo / H table (accuracy and macro-F1, in %) on stdout (``stderr``: there)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title) or None, title_justify="left", header_style="bold")
    table.add_column("")
    table.add_column("accuracy %", justify="right")
    table.add_column("macro-F1 %", justify="right")
    table.add_column("n", justify="right")
    for key, label in (("hi", "Hi (high-end test)"), ("lo", "Lo (low-end test)"), ("H", "H (harmonic)")):
        row = metrics[key]
        table.add_row(
            label, f"{100 * row['accuracy']:.2f}", f"{100 * row['macro_f1']:.2f}", str(row.get("n", ""))
        )
    Console(soft_wrap=True, stderr=stderr).print(table)
