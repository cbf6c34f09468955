"""Accuracy, macro-F1, confusion matrix and H against scikit-learn; the scores table shows a run path
literally."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from faults import cli
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from kmat_cli.evaluate import Evaluation, accuracy, harmonic, macro_f1
from kmat_cli.evaluate import confusion_matrix as cm

pytestmark = pytest.mark.usefixtures("trust_code")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_scikit_learn(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    k = 6
    y = torch.randint(0, k - 1, (200,), generator=g)  # class 5 never occurs in the labels
    p = torch.where(torch.rand(200, generator=g) < 0.6, y, torch.randint(0, k, (200,), generator=g))
    labels = list(range(k))
    assert accuracy(y, p) == pytest.approx(accuracy_score(y, p), abs=1e-12)
    want = f1_score(y, p, labels=labels, average="macro", zero_division=0)
    assert macro_f1(y, p, k) == pytest.approx(want, abs=1e-12)
    assert cm(y, p, k).tolist() == confusion_matrix(y, p, labels=labels).tolist()


def test_macro_f1_counts_a_class_absent_everywhere_as_zero() -> None:
    y = torch.tensor([0, 0, 1, 1])
    assert macro_f1(y, y, 3) == pytest.approx(
        f1_score(y, y, labels=[0, 1, 2], average="macro", zero_division=0)
    )
    assert macro_f1(y, y, 3) == pytest.approx(2 / 3)


def test_harmonic_mean_and_metrics_layout() -> None:
    assert harmonic(0.8, 0.4) == pytest.approx(2 * 0.8 * 0.4 / 1.2)
    assert harmonic(0.0, 0.0) == 0.0
    ev = Evaluation(class_names=["a", "b"])
    ev.labels = {"hi": torch.tensor([0, 1, 1, 0]), "lo": torch.tensor([0, 1, 1, 1])}
    ev.preds = {"hi": torch.tensor([0, 1, 1, 0]), "lo": torch.tensor([1, 1, 0, 1])}
    m = ev.metrics()
    assert m["hi"]["accuracy"] == 1.0 and m["lo"]["accuracy"] == 0.5
    assert m["H"]["accuracy"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert m["lo"]["confusion"] == [[0, 1], [1, 2]] and m["lo"]["n"] == 4
    lo_f1 = f1_score([0, 1, 1, 1], [1, 1, 0, 1], average="macro")
    assert m["H"]["macro_f1"] == pytest.approx(2 * lo_f1 / (1 + lo_f1))


@pytest.mark.usefixtures("no_progress")
def test_evaluate_shows_a_run_path_with_markup_literally(bracket_run: Path, wide: None) -> None:
    assert "[/y]" in str(bracket_run)  # rich would read a closing tag there
    result = cli("evaluate", bracket_run)
    assert result.code == 0, result.err
    assert str(bracket_run) in result.out and "Hi (high-end test)" in result.out
