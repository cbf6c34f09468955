"""Plots: the numbers behind them against scikit-learn, and the PNG files they write."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.metrics import confusion_matrix, recall_score

from kmat_cli import config, export, workflow
from kmat_cli.errors import UsageError
from kmat_cli.experiments import plots, report_plots
from kmat_cli.experiments.cells import Cell, Outcome
from kmat_cli.experiments.variants import Result, Variant

CLASSES = ["nodule", "mass", "cyst", "patch", "strand"]
WORDS = {"hi": "crisp colour scan", "lo": "grey low-dose scan"}


class _Fixed(torch.nn.Module):
    """A stand-in method with fixed class embeddings, for export's writer."""

    def __init__(self, hi: torch.Tensor, lo: torch.Tensor) -> None:
        super().__init__()
        self.ctx = torch.nn.Parameter(torch.zeros(1, 2))
        self.hi, self.lo = hi, lo

    def text_embeddings(self) -> dict[str, torch.Tensor]:
        return {"hi": self.hi, "lo": self.lo}


def write_prompt_file(
    path: Path, seed: int, shift: float, classes: list[str] = CLASSES, dim: int = 16
) -> Path:
    """A real prompts.safetensors (export's writer) with random embeddings; lo = hi + ``shift`` noise."""
    g = torch.Generator().manual_seed(seed)
    hi = torch.nn.functional.normalize(torch.randn(len(classes), dim, generator=g), dim=-1)
    lo = torch.nn.functional.normalize(hi + shift * torch.randn(len(classes), dim, generator=g), dim=-1)
    backbone = SimpleNamespace(id="toy", embed_dim=dim, logit_scale=100.0, preprocess_spec={"image_size": 32})
    task = SimpleNamespace(name="toy", class_names=classes, modalities=WORDS)
    return export.write_prompts(path, _Fixed(hi, lo), backbone, task=task)


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size[0] > 100 and img.size[1] > 100


def random_metrics(rng: np.random.Generator, k: int = len(CLASSES), n: int = 60) -> tuple[dict, dict]:
    """A metrics.json-like dict and the label/prediction arrays behind it (class 3 absent from lo)."""
    out, raw = {"class_names": CLASSES}, {}
    for m in ("hi", "lo"):
        y = rng.integers(0, k, n)
        if m == "lo":
            y[y == 3] = 0
        p = np.where(rng.random(n) < 0.5, y, rng.integers(0, k, n))
        cm = confusion_matrix(y, p, labels=range(k))
        out[m] = {"accuracy": float((y == p).mean()), "confusion": cm.tolist()}
        raw[m] = (y, p)
    return out, raw


# --------------------------------------------------------------------------------------------- numbers
def test_pca_coordinates_equal_sklearn_up_to_sign() -> None:
    x = np.random.default_rng(0).normal(size=(24, 12)) * np.linspace(3, 0.1, 12)
    ours = plots.project_2d(x, "pca")
    ref = PCA(n_components=2).fit_transform(x)
    for axis in range(2):
        sign = np.sign(ours[:, axis] @ ref[:, axis])
        np.testing.assert_allclose(ours[:, axis], sign * ref[:, axis], atol=1e-9)


def test_pca_handles_rank_one_and_single_points() -> None:
    line = np.outer(np.arange(5.0), np.ones(3))
    coords = plots.project_2d(line, "pca")
    assert coords.shape == (5, 2)
    np.testing.assert_allclose(coords[:, 1], 0, atol=1e-12)
    np.testing.assert_allclose(np.abs(np.diff(coords[:, 0])), np.sqrt(3))
    np.testing.assert_array_equal(plots.project_2d(np.ones((1, 4)), "pca"), np.zeros((1, 2)))
    with pytest.raises(UsageError, match="unknown projection 'umap'"):
        plots.project_2d(line, "umap")


def test_tsne_is_deterministic_and_keeps_clusters_apart() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 0.05, (8, 10)), rng.normal(5, 0.05, (8, 10))])
    a, b = plots.project_2d(x, "tsne", seed=3), plots.project_2d(x, "tsne", seed=3)
    np.testing.assert_array_equal(a, b)
    within = max(np.ptp(a[:8], axis=0).max(), np.ptp(a[8:], axis=0).max())
    between = np.linalg.norm(a[:8].mean(0) - a[8:].mean(0))
    assert between > 2 * within


def test_per_class_recall_equals_sklearn() -> None:
    rng = np.random.default_rng(2)
    metrics, raw = random_metrics(rng)
    for m in ("hi", "lo"):
        y, p = raw[m]
        ref = recall_score(y, p, labels=range(len(CLASSES)), average=None, zero_division=0)
        np.testing.assert_allclose(plots.per_class_recall(metrics[m]["confusion"]), ref)
    assert plots.per_class_recall(metrics["lo"]["confusion"])[3] == 0.0  # absent class
    with pytest.raises(UsageError, match="square"):
        plots.per_class_recall([[1, 2, 3]])


def test_per_class_scores_average_seeds_class_by_class() -> None:
    rng = np.random.default_rng(3)
    seeds = [random_metrics(rng) for _ in range(3)]
    scores = plots.per_class_scores({"A": [s[0] for s in seeds], "B": seeds[0][0]}, "lo")
    ref = np.stack(
        [
            recall_score(*raw["lo"], labels=range(len(CLASSES)), average=None, zero_division=0)
            for _, raw in seeds
        ]
    )
    np.testing.assert_allclose(scores["A"][0], ref.mean(0))
    np.testing.assert_allclose(scores["A"][1], ref.std(0))
    np.testing.assert_allclose(scores["B"][0], ref[0])
    np.testing.assert_array_equal(scores["B"][1], 0)


# -------------------------------------------------------------------------------------------- pictures
def test_prompt_map_projects_all_panels_jointly(tmp_path: Path) -> None:
    files = {"near": write_prompt_file(tmp_path / "a.safetensors", 0, 0.1)}
    files["far"] = write_prompt_file(tmp_path / "b.safetensors", 1, 1.0)
    names, words, panels = plots.prompt_map_data(files)
    assert names == CLASSES and words == WORDS
    stacked = []
    for path in files.values():
        p = export.read_prompts(path)
        stacked += [p.embeddings["hi"].double().numpy(), p.embeddings["lo"].double().numpy()]
    joint = plots.project_2d(np.concatenate(stacked))
    k = len(CLASSES)
    np.testing.assert_allclose(panels[0].hi, joint[:k])
    np.testing.assert_allclose(panels[1].lo, joint[3 * k :])
    hi, lo = stacked[2], stacked[3]
    assert panels[1].gap == pytest.approx(np.linalg.norm(hi - lo, axis=1).mean())
    assert panels[0].gap < panels[1].gap
    for method in ("pca", "tsne"):
        assert_png(plots.prompt_map(files, tmp_path / f"map-{method}.png", method))


def test_prompt_map_rejects_files_of_other_classes(tmp_path: Path) -> None:
    a = write_prompt_file(tmp_path / "a.safetensors", 0, 0.1)
    b = write_prompt_file(tmp_path / "b.safetensors", 0, 0.1, classes=CLASSES[:4])
    with pytest.raises(UsageError, match="classes differ"):
        plots.prompt_map({"a": a, "b": b}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_bars_and_confusion_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    metrics = {"A": [random_metrics(rng)[0] for _ in range(2)], "B": random_metrics(rng)[0]}
    assert_png(plots.per_class_accuracy(metrics, CLASSES, tmp_path / "bars.png"))
    six = {f"method {i}": random_metrics(rng)[0] for i in range(6)}  # a benchmark's six methods
    assert_png(plots.per_class_accuracy(six, CLASSES, tmp_path / "bars6.png"))
    assert_png(plots.confusion_matrices(metrics["B"], CLASSES, tmp_path / "cm.png", modalities=WORDS))
    with pytest.raises(UsageError, match="expected 4"):
        plots.per_class_accuracy(metrics, CLASSES[:4], tmp_path / "bad.png")


def test_without_matplotlib_a_usage_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    metrics, _ = random_metrics(np.random.default_rng(5))
    with pytest.raises(UsageError, match=r"kmat\[plots\]"):
        plots.confusion_matrices(metrics, CLASSES, tmp_path / "cm.png")


def test_without_scikit_learn_tsne_is_a_usage_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)  # import fails as if not installed
    points = np.random.default_rng(6).normal(size=(6, 4))
    with pytest.raises(UsageError, match=r"scikit-learn: pip install 'kmat\[plots\]'"):
        plots.project_2d(points, "tsne")
    assert plots.project_2d(points, "pca").shape == (6, 2)  # PCA needs no scikit-learn


# ------------------------------------------------------------------------------ benchmark report plots
@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real phantom runs (1 epoch, 2 shots): K-MaT and K-MaT with its transport term off."""
    out = tmp_path_factory.mktemp("runs")
    runs = {}
    for label, sets in (("full", []), ("ablated", ["method.transport=false"])):
        flags = {"train.epochs": 1, "train.shots": 2, "train.threads": 1, "out": str(out)}
        cfg = config.build(flags=flags, sets=sets)
        runs[label] = workflow.run_training(cfg, progress=False, show=False).path
    return runs


def outcome(
    run: Path | None, method: str, seed: int, sets: tuple[str, ...] = (), metrics: dict | None = None
) -> Result:
    """A finished cell of a benchmark grid, tied to its row: ``method`` with the row's own ``sets``."""
    if metrics is None:
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    flags = {"task.name": "phantom", "method.name": method, "train.seed": seed, "train.shots": 2}
    cell = Cell(flags=flags, sets=("train.threads=1", *sets))
    done = Outcome(cell=cell, status="done", result={"metrics": metrics, "run": str(run)}, error=None)
    return Result("phantom", Variant(" ".join(sets) or method, method, sets), seed, done)


def test_report_plots_of_a_benchmark_grid(tiny_runs: dict[str, Path], tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    full = json.loads((tiny_runs["full"] / "metrics.json").read_text(encoding="utf-8"))
    classes = full["class_names"]
    k = len(classes)
    coop = []
    for seed in (1, 2):  # hand-made CoOp metrics of two seeds, on the phantom's classes
        y = rng.integers(0, k, 80)
        p = np.where(rng.random(80) < 0.4, y, rng.integers(0, k, 80))
        cm = confusion_matrix(y, p, labels=range(k)).tolist()
        coop.append(
            ({"class_names": classes, "hi": {"confusion": cm}, "lo": {"confusion": cm}}, (y, p), seed)
        )
    outcomes = [
        outcome(tiny_runs["full"], "kmat", 1),
        outcome(tiny_runs["ablated"], "kmat", 1, ("method.transport=false",)),
        *(outcome(None, "coop", seed, metrics=m) for m, _, seed in coop),
    ]
    both_off = ("method.anchor=false", "method.transport=false")  # another ablation row: not in the bars
    outcomes.append(outcome(tiny_runs["ablated"], "kmat", 1, both_off))
    first = outcomes[0]
    broken = Outcome(cell=first.outcome.cell, status="failed", result=None, error="x")
    outcomes.append(Result(first.task, first.variant, first.seed, broken))
    written = report_plots.write_report_plots(outcomes, tmp_path / "plots")
    paths = [p.path for p in written]
    assert [p.name for p in paths] == [
        "phantom-prompt-map.png",
        "phantom-per-class-lo.png",
        "phantom-confusion-kmat.png",
    ]
    for path in paths:
        assert_png(path)
    # the numbers behind the bars: CoOp's mean over seeds of scikit-learn's per-class recall
    by_label = report_plots.report_bar_data(outcomes)["phantom"]
    assert list(by_label) == ["K-MaT", "K-MaT without transport", "CoOp"]
    assert [len(v) for v in by_label.values()] == [1, 1, 2]
    ref = np.mean(
        [recall_score(y, p, labels=range(k), average=None, zero_division=0) for _, (y, p), _ in coop], axis=0
    )
    np.testing.assert_allclose(plots.per_class_scores(by_label)["CoOp"][0], ref)
    text = report_plots.plots_markdown(written, tmp_path)
    assert "](plots/phantom-prompt-map.png)" in text and text.startswith("## Plots")


def test_report_prompt_map_without_the_ablation_cell(tiny_runs: dict[str, Path], tmp_path: Path) -> None:
    paths = [
        p.path for p in report_plots.write_report_plots([outcome(tiny_runs["full"], "kmat", 1)], tmp_path)
    ]
    assert paths[0].name == "phantom-prompt-map.png"
    assert_png(paths[0])


def test_whiskers_stay_within_0_and_100_percent() -> None:
    mean, std = np.array([0.95, 0.02, 0.5]), np.array([0.1, 0.1, 0.1])
    below, above = plots.whiskers(mean, std)
    assert np.all(mean - below >= 0) and np.all(mean + above <= 1)
    np.testing.assert_allclose(below, [0.1, 0.02, 0.1])
    np.testing.assert_allclose(above, [0.05, 0.1, 0.1])


def test_report_captions_say_what_each_plot_shows(tiny_runs: dict[str, Path], tmp_path: Path) -> None:
    alone = report_plots.write_report_plots([outcome(tiny_runs["full"], "kmat", 1)], tmp_path / "a")
    captions = {p.path.name: p.caption for p in alone}
    assert "with and without transport" not in captions["phantom-prompt-map.png"]
    assert "no run without transport" in captions["phantom-prompt-map.png"]
    assert (
        "(seed 1)" in captions["phantom-per-class-lo.png"]
        and "whiskers" not in captions["phantom-per-class-lo.png"]
    )
    pair = [
        outcome(tiny_runs["full"], "kmat", 1),
        outcome(tiny_runs["ablated"], "kmat", 1, ("method.transport=false",)),
    ]
    both = {p.path.name: p.caption for p in report_plots.write_report_plots(pair, tmp_path / "b")}
    assert "with and without transport (seed 1)" in both["phantom-prompt-map.png"]
    text = report_plots.plots_markdown(alone, tmp_path)
    assert f"![phantom: {captions['phantom-prompt-map.png']}](a/phantom-prompt-map.png)" in text
