"""Plots of learned prompts and benchmark results (PNG, matplotlib; the ``plots`` extra).

- :func:`prompt_map`: a 2-D map (PCA or t-SNE) of the learned high- and low-end class embeddings
  ``text_embeddings.{hi,lo}`` of one or more exported ``prompts.safetensors``, one panel per file, all
  panels projected jointly so they share axes (the K-MaT paper's Fig. 2a: with and without transport).
- :func:`per_class_accuracy`: grouped bars of per-class recall (= per-class accuracy) on one modality's
  test split for several methods (Fig. 2b), from the confusion matrices in ``metrics.json``.
- :func:`confusion_matrices`: high- and low-end confusion matrices side by side, counts annotated.

:mod:`kmat_cli.experiments.report_plots` draws them for the cells of a ``kmat benchmark`` grid.

The numbers behind the pictures are plain functions (:func:`project_2d`, :func:`per_class_recall`,
:func:`per_class_scores`) so they can be checked without looking at a picture. matplotlib is imported
lazily and only its Agg canvas is used (no pyplot, no display, no global backend switch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmat_cli import atomic, datafiles
from kmat_cli.api import MODALITIES
from kmat_cli.errors import UsageError

MODALITY_LABELS = {"hi": "high-end", "lo": "low-end"}
MODALITY_MARKERS = {"hi": "o", "lo": "^"}


# ------------------------------------------------------------------------------------------- matplotlib
def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas; a UsageError naming the extra when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UsageError("plots need matplotlib: pip install 'kmat[plots]'") from exc
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out: str | Path) -> Path:
    out = Path(out)
    atomic.write_with(out, lambda tmp: fig.savefig(tmp, format="png"))
    return out


def class_colors(n: int) -> list[Any]:
    """``n`` distinguishable colours: tab10 up to 10 classes, tab20 up to 20, else a sampled hue circle."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["hsv"](i / n) for i in range(n)]


# ------------------------------------------------------------------------------------------- projections
def project_2d(points: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, D) points -> (N, 2) coordinates.

    ``pca``: X_c = X - mean(X); X_c = U S V^T (SVD); coordinates X_c V[:, :2] (the first two principal
    components; each axis's sign fixed so that the largest-magnitude entry of its V column is positive;
    missing axes, when rank < 2, are 0). ``tsne``: scikit-learn's exact t-SNE with PCA initialisation,
    ``random_state=seed`` and perplexity ``min(30, max(1, (N - 1) / 3))`` (always below N).
    """
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise UsageError(f"project_2d needs an (N, D) array, got shape {x.shape}")
    n = x.shape[0]
    if method == "pca":
        xc = x - x.mean(axis=0, keepdims=True)
        out = np.zeros((n, 2))
        if n == 0 or x.shape[1] == 0:
            return out
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        comps = vt[:2]
        signs = np.sign(comps[np.arange(comps.shape[0]), np.abs(comps).argmax(axis=1)])
        comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
        proj = xc @ comps.T
        out[:, : proj.shape[1]] = proj
        return out
    if method == "tsne":
        if n < 3:
            return project_2d(x, "pca")
        try:
            from sklearn.manifold import TSNE
        except ImportError as exc:
            raise UsageError("t-SNE projections need scikit-learn: pip install 'kmat[plots]'") from exc

        perplexity = min(30.0, max(1.0, (n - 1) / 3))
        tsne = TSNE(
            n_components=2,
            perplexity=perplexity,
            init="pca",
            random_state=seed,
            method="exact",
            max_iter=1000,
        )
        return np.asarray(tsne.fit_transform(x), dtype=np.float64)
    raise UsageError(f"unknown projection '{method}'; use pca or tsne")


# ------------------------------------------------------------------------------------------- prompt map
@dataclass
class PromptPanel:
    """One panel of a prompt map: 2-D coordinates of the K high- and K low-end class embeddings."""

    label: str
    hi: np.ndarray  # (K, 2)
    lo: np.ndarray  # (K, 2)
    gap: float  # mean over classes of || t_{k,hi} - t_{k,lo} ||_2 in the embedding space


def prompt_map_data(
    prompt_files: Mapping[str, str | Path], method: str = "pca", seed: int = 0
) -> tuple[list[str], dict[str, str], list[PromptPanel]]:
    """Read the prompt files and project all their embeddings jointly: (class names, modality words,
    panels). Every file must have the same class names and embedding size."""
    from kmat_cli.export import read_prompts

    if not prompt_files:
        raise UsageError("a prompt map needs at least one prompts.safetensors")
    names: list[str] | None = None
    words: dict[str, str] = {}
    blocks: list[np.ndarray] = []
    gaps: list[float] = []
    for label, path in prompt_files.items():
        prompts = read_prompts(path)
        missing = [m for m in MODALITIES if m not in prompts.embeddings]
        if missing:
            raise UsageError(f"{path}: no text_embeddings.{missing[0]}; export the run again (kmat export)")
        if names is None:
            names = prompts.class_names
            words = datafiles.parse_json(
                prompts.metadata.get("kmat.modalities", "{}"), f"{path}: kmat.modalities"
            )
        elif prompts.class_names != names:
            raise UsageError(f"{path}: its classes differ from those of the other prompt files ({label})")
        hi, lo = (prompts.embeddings[m].double().numpy() for m in MODALITIES)
        if blocks and hi.shape[1] != blocks[0].shape[1]:
            raise UsageError(f"{path}: embedding size {hi.shape[1]} differs from {blocks[0].shape[1]}")
        blocks.append(np.concatenate([hi, lo]))
        gaps.append(float(np.linalg.norm(hi - lo, axis=1).mean()))
    coords = project_2d(np.concatenate(blocks), method, seed)
    k = len(names or [])
    panels = [
        PromptPanel(label, coords[2 * k * i : 2 * k * i + k], coords[2 * k * i + k : 2 * k * (i + 1)], gap)
        for i, (label, gap) in enumerate(zip(prompt_files, gaps, strict=True))
    ]
    return list(names or []), words, panels


def prompt_map(
    prompt_files: Mapping[str, str | Path],
    out: str | Path,
    method: str = "pca",
    *,
    title: str | None = None,
    seed: int = 0,
) -> Path:
    """Panels side by side, one per ``{label: prompts.safetensors}``: the 2-D projection (``pca`` or
    ``tsne``, computed jointly over every panel, so the panels share axes) of the high- and low-end class
    embeddings; colour = class, marker = modality (o high-end, ^ low-end), a line joins each class's pair.
    Each panel's title gives the mean high-to-low distance in the embedding space. Returns ``out``."""
    from matplotlib.lines import Line2D

    names, words, panels = prompt_map_data(prompt_files, method, seed)
    colors = class_colors(len(names))
    fig = _figure(4.2 * len(panels) + 1.8, 4.4)
    axes = fig.subplots(1, len(panels), sharex=True, sharey=True, squeeze=False)[0]
    axis = {"pca": "PC", "tsne": "t-SNE "}[method]
    for ax, panel in zip(axes, panels, strict=True):
        for k in range(len(names)):
            ax.plot(*zip(panel.hi[k], panel.lo[k], strict=True), color=colors[k], lw=1, alpha=0.6, zorder=1)
        for m, pts in (("hi", panel.hi), ("lo", panel.lo)):
            ax.scatter(
                pts[:, 0],
                pts[:, 1],
                c=colors,
                marker=MODALITY_MARKERS[m],
                s=60,
                zorder=2,
                edgecolors="black",
                linewidths=0.5,
            )
        ax.set_title(f"{panel.label}\nmean ||t_hi - t_lo|| = {panel.gap:.3f}", fontsize=10)
        ax.set_xlabel(f"{axis}1")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{axis}2")
    handles = [
        Line2D([], [], color=c, marker="s", ls="", label=n) for c, n in zip(colors, names, strict=True)
    ]
    handles += [
        Line2D(
            [],
            [],
            color="gray",
            marker=MODALITY_MARKERS[m],
            ls="",
            markeredgecolor="black",
            label=f"{MODALITY_LABELS[m]}" + (f" ({words[m]})" if words.get(m) else ""),
        )
        for m in MODALITIES
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle(title or f"Learned prompt embeddings ({'PCA' if method == 'pca' else 't-SNE'})", fontsize=11)
    return _save(fig, out)


# ------------------------------------------------------------------------------------ per-class accuracy
def per_class_recall(confusion: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Recall of every class from a confusion matrix (row = true class, column = predicted):
    ``recall_k = C[k, k] / sum_j C[k, j]``, 0 for a class with no test images (scikit-learn's
    ``recall_score(average=None, zero_division=0)``). Recall of class k = accuracy on class k's images."""
    c = np.asarray(confusion, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise UsageError(f"a confusion matrix must be square, got shape {c.shape}")
    rows = c.sum(axis=1)
    return np.divide(np.diag(c), rows, out=np.zeros_like(rows), where=rows > 0)


def per_class_scores(
    metrics_by_method: Mapping[str, Mapping[str, Any] | Sequence[Mapping[str, Any]]], modality: str = "lo"
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{label: (mean, std)}`` of per-class recall on ``modality``; a value is one ``metrics.json`` dict or a
    list of them (seeds), averaged class by class (population std, 0 for one seed)."""
    out = {}
    for label, metrics in metrics_by_method.items():
        runs = [metrics] if isinstance(metrics, Mapping) else list(metrics)
        if not runs:
            raise UsageError(f"no metrics for '{label}'")
        try:
            recalls = np.stack([per_class_recall(m[modality]["confusion"]) for m in runs])
        except KeyError as exc:
            raise UsageError(f"metrics of '{label}' have no {modality} confusion matrix") from exc
        out[label] = (recalls.mean(axis=0), recalls.std(axis=0))
    return out


def whiskers(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Error-bar lengths (2, K) below and above ``mean`` of one std, cut at the bounds 0 and 1 of an
    accuracy (a whisker past 100 % would show an impossible value)."""
    return np.stack([np.minimum(std, mean), np.minimum(std, 1.0 - mean)])


def per_class_accuracy(
    metrics_by_method: Mapping[str, Mapping[str, Any] | Sequence[Mapping[str, Any]]],
    class_names: Sequence[str],
    out: str | Path,
    modality: str = "lo",
    *,
    title: str | None = None,
) -> Path:
    """Grouped bars: for each class, one bar per method, the per-class accuracy (recall, in %) on the
    ``modality`` test split (mean over seeds when a method has several metrics; whiskers: std, cut at 0 and
    100 %, see :func:`whiskers`). Returns
    ``out``. The numbers are :func:`per_class_scores`."""
    scores = per_class_scores(metrics_by_method, modality)
    k = len(class_names)
    for label, (mean, _) in scores.items():
        if mean.shape[0] != k:
            raise UsageError(f"metrics of '{label}' have {mean.shape[0]} classes, expected {k}")
    n = max(1, len(scores))
    width = 0.8 / n
    fig = _figure(min(16.0, max(6.0, 0.14 * k * n + 3.5)), 4.2)
    ax = fig.subplots()
    x = np.arange(k)
    for i, (label, (mean, std)) in enumerate(scores.items()):
        ax.bar(
            x - 0.4 + width * (i + 0.5),
            100 * mean,
            width,
            yerr=100 * whiskers(mean, std) if std.any() else None,
            label=f"{label} (class mean {100 * mean.mean():.1f})",
            capsize=2,
        )
    ax.set_xticks(x, list(class_names), rotation=30, ha="right")
    ax.set_ylabel(f"{MODALITY_LABELS.get(modality, modality)} per-class accuracy (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    if n > 4:  # many methods: the legend beside the axes (a figure legend; constrained layout makes room)
        fig.legend(fontsize=8, loc="outside right upper", frameon=False)
    else:
        ax.legend(fontsize=8, loc="best")
    ax.set_title(title or f"Per-class accuracy on the {MODALITY_LABELS.get(modality, modality)} test split")
    return _save(fig, out)


# ----------------------------------------------------------------------------------- confusion matrices
def confusion_matrices(
    metrics: Mapping[str, Any],
    class_names: Sequence[str],
    out: str | Path,
    *,
    title: str | None = None,
    modalities: Mapping[str, str] | None = None,
) -> Path:
    """The high- and low-end test confusion matrices of one ``metrics.json`` side by side (rows: true
    class, columns: predicted; colour: share of the row, text: counts). Returns ``out``."""
    present = [m for m in MODALITIES if isinstance(metrics.get(m), Mapping) and "confusion" in metrics[m]]
    if not present:
        raise UsageError("these metrics have no confusion matrix (evaluate the run on its test splits)")
    k = len(class_names)
    fig = _figure(3.2 + 3.6 * len(present), 4.2 + 0.1 * k)
    axes = fig.subplots(1, len(present), squeeze=False)[0]
    for ax, m in zip(axes, present, strict=True):
        c = np.asarray(metrics[m]["confusion"], dtype=np.float64)
        if c.shape != (k, k):
            raise UsageError(f"the {m} confusion matrix is {c.shape}, expected {k} x {k} classes")
        share = c / np.maximum(c.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                ax.text(
                    j,
                    i,
                    f"{int(c[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share[i, j] > 0.55 else "black",
                )
        ax.set_xticks(range(k), list(class_names), rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(k), list(class_names), fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        words = f" ({modalities[m]})" if modalities and modalities.get(m) else ""
        acc = metrics[m].get("accuracy")
        acc_text = f", accuracy {100 * acc:.1f}%" if isinstance(acc, (int, float)) else ""
        ax.set_title(f"{MODALITY_LABELS[m]}{words}{acc_text}", fontsize=9)
    if title:
        fig.suptitle(title)
    return _save(fig, out)
