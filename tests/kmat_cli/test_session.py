"""The Python API as a user of open_clip, HF pipelines and scikit-learn expects it: ``kmat.predict`` on paths,
folders, Pillow images and tensors; ``kmat.Run(path)`` on any run; progress by default; short reprs; a
runnable example in every public function's docstring; the quickstart notebook. The API is the command
line's code path: the same runs, scores, prompts and predictions."""

from __future__ import annotations

import csv
import doctest
import inspect
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from kmat_runner import cli
from PIL import Image
from repo_paths import REPO
from short_runs import SHORT

import kmat
from kmat_cli import config
from kmat_cli.errors import UsageError

FUNCTIONS = [name for name in kmat.__all__ if inspect.isfunction(getattr(kmat, name))]


# ------------------------------------------------------------------------------- 3. kmat.Run(str)
def test_run_reopens_any_run_folder_given_as_text(phantom_run: Path) -> None:
    run = kmat.Run(str(phantom_run))
    assert run.path == phantom_run and run.status == "finished"
    assert run.config["train"]["seed"] == 3 and run.config["method"]["name"] == "coop"
    assert run.metrics == json.loads((phantom_run / "metrics.json").read_text())
    lines = (phantom_run / "metrics.jsonl").read_text().splitlines()
    assert run.history == [json.loads(line) for line in lines] and run.history[0]["epoch"] == 1
    assert repr(run) == f"kmat.Run({str(phantom_run)!r}, status='finished')"
    with pytest.raises(UsageError, match="not a kmat run folder"):
        kmat.Run(str(phantom_run.parent))


# ------------------------------------------------------------------- 2. + 7. what kmat.predict takes
def _probabilities(rows: list[dict]) -> list[list[float]]:
    return [list(r["probabilities"].values()) for r in rows]


def _same_predictions(rows: list[dict], expected: list[dict]) -> bool:
    """Same labels, and probabilities equal up to float32 noise (batches of other sizes round apart)."""
    got, want = _probabilities(rows), _probabilities(expected)
    return [r["label"] for r in rows] == [r["label"] for r in expected] and all(
        a == pytest.approx(b, rel=1e-4, abs=1e-6) for a, b in zip(got, want, strict=True)
    )


def test_predict_takes_paths_folders_pil_images_and_tensors_alike(phantom_prompts: Path) -> None:
    from torchvision.transforms.functional import to_tensor

    images = phantom_prompts.parent / "images"
    files = sorted(images.iterdir())
    quiet = {"embeddings": phantom_prompts, "device": "cpu", "progress": False}
    by_folder = kmat.predict(str(images), **quiet)
    assert [r["path"] for r in by_folder] == [str(f) for f in files]
    one = kmat.predict(str(files[0]), **quiet)
    assert [r["path"] for r in one] == [str(files[0])] and _same_predictions(one, by_folder[:1])
    two = kmat.predict([files[0], str(files[1])], **quiet)
    assert [r["path"] for r in two] == [str(f) for f in files[:2]] and _same_predictions(two, by_folder[:2])
    pil = [Image.open(f) for f in files[:3]]
    in_memory = kmat.predict(pil, **quiet)
    assert [r["path"] for r in in_memory] == ["<image 0>", "<image 1>", "<image 2>"]
    assert _same_predictions(in_memory, by_folder[:3])
    batch = kmat.predict(torch.stack([to_tensor(im.convert("RGB")) for im in pil]), **quiet)
    assert _same_predictions(batch, by_folder[:3])
    with pytest.raises(UsageError, match=r"values in \[0, 1\]"):
        kmat.predict(255 * to_tensor(pil[0].convert("RGB")), **quiet)
    with pytest.raises(UsageError, match="cannot classify a int"):
        kmat.predict([3], **quiet)


def test_predict_rows_make_a_dataframe(phantom_prompts: Path) -> None:
    rows = kmat.predict(phantom_prompts.parent / "images", embeddings=phantom_prompts, progress=False)
    keys = ["path", "frame", "label", "probabilities", "error"]
    assert all(list(r) == keys for r in rows)  # the same keys in every row: one column each
    try:
        import pandas as pd
    except ImportError:
        return
    frame = pd.DataFrame(rows)
    assert list(frame.columns) == keys and len(frame) == len(rows)
    assert list(frame["label"]) == [r["label"] for r in rows]


# ------------------------------------------------------------------------ 7. progress and reprs
def test_progress_is_on_by_default_and_off_with_one_argument(tmp_path: Path, capsys) -> None:
    kmat.train(task="phantom", out=tmp_path / "runs", **SHORT)
    assert "kmat: epoch 1/1 loss" in capsys.readouterr().err  # a notebook's stderr is no terminal: lines
    kmat.train(task="phantom", out=tmp_path / "runs", progress=False, **SHORT)
    assert capsys.readouterr().err == ""


def test_prompts_repr_is_one_short_line(phantom_prompts: Path) -> None:
    text = repr(kmat.load_prompts(phantom_prompts))
    assert "\n" not in text and len(text) < 200 and "8 classes" in text and "lo: (8, 128)" in text
    assert "tensor(" not in text


# ------------------------------------------------------------------------- docstring examples
def test_every_public_function_has_an_example() -> None:
    assert {"train", "evaluate", "export", "load_prompts", "predict", "sample_images"} <= set(FUNCTIONS)
    for name in [*FUNCTIONS, "Run"]:
        assert ">>> " in (getattr(kmat, name).__doc__ or ""), name


def test_the_docstring_examples_run_in_a_fresh_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the order a user meets them: train first, then what works on its run."""
    monkeypatch.chdir(tmp_path)
    order = ["train", "Run", "evaluate", "export", "load_prompts", "sample_images", "predict", "train_config"]
    assert sorted(order) == sorted([*FUNCTIONS, "Run"])
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    finder = doctest.DocTestFinder(recurse=False)
    for name in order:
        for test in finder.find(getattr(kmat, name), name, globs={"kmat": kmat}):
            result = runner.run(test)
            assert result.failed == 0, name


# --------------------------------------------------------------------------------- the notebook
def _code_cells(path: Path) -> list[str]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    return ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]


@pytest.mark.slow
def test_the_quickstart_notebook_runs_offline(tmp_path: Path) -> None:
    """Through a Jupyter kernel where nbclient and ipykernel are installed; otherwise its code cells in order
    in one fresh Python process, as a kernel would run them."""
    notebook = REPO / "examples" / "quickstart.ipynb"
    try:
        import ipykernel  # noqa: F401
        import nbclient
        import nbformat
    except ImportError:
        script = "\n".join(
            f"exec(compile({cell!r}, 'cell {i}', 'exec'))" for i, cell in enumerate(_code_cells(notebook))
        )
        script += "\nassert prompts.class_names and rows and same\n"
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=900
        )
        assert result.returncode == 0, result.stderr[-3000:]
    else:
        nb = nbformat.read(notebook, as_version=4)
        nbclient.NotebookClient(nb, timeout=900, resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert (tmp_path / "runs/train/phantom-kmat-s1-1/metrics.json").is_file()
    assert sorted(p.name for p in (tmp_path / "scans").iterdir())[0] == "00-adenoma.png"


# ----------------------------------------------------------------------------------------- the API
def test_the_python_api_is_the_cli_code_path(
    phantom_run: Path, phantom_prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import kmat

    run = kmat.Run(phantom_run)
    assert run.status == "finished" and run.config["train"]["seed"] == 3
    metrics = kmat.evaluate(run)
    assert metrics["lo"] == run.metrics["lo"] and 0 <= metrics["lo"]["accuracy"] <= 1
    exported = kmat.export(run, tmp_path / "p.safetensors")
    prompts = kmat.load_prompts(exported)
    assert prompts.class_names == kmat.load_prompts(phantom_prompts).class_names
    assert prompts.embeddings["lo"].shape[0] == len(prompts.class_names)
    images = phantom_prompts.parent / "images"
    rows = kmat.predict([images], embeddings=exported, device="cpu")
    assert len(rows) == 12 and all(r["error"] is None and r["label"] in prompts.class_names for r in rows)
    code, stdout, _ = cli("predict", images, "--embeddings", exported, "--device", "cpu")
    table = list(csv.DictReader(io.StringIO(stdout)))
    assert code == 0 and [r["path"] for r in table] == [r["path"] for r in rows]
    for mine, theirs in zip(rows, table, strict=True):
        assert mine["label"] == theirs["label"]
        for name, p in mine["probabilities"].items():
            assert float(theirs[f"prob_{name}"]) == pytest.approx(p, rel=1e-6)
    with pytest.raises(UsageError, match="unknown train option 'epoch'"):
        kmat.train(task="phantom", epoch=1)


def test_api_train_config_matches_the_cli_flags() -> None:
    import kmat

    cfg = kmat.train_config(task="phantom", method="coop", seed=5, train={"lr": 0.01}, **SHORT)
    same = config.build(
        flags={"task.name": "phantom", "method.name": "coop", "train.seed": 5, "train.epochs": 1},
        sets=["train.shots=2", "train.threads=1", "train.lr=0.01"],
    )
    assert cfg == same
