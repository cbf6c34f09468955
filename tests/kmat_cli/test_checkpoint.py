"""A checkpoint that does not fit its run (tensor names, shapes, dtypes; optimizer state of other
parameters) or whose ``checkpoint.json`` fields are damaged is one ``kmat: error:`` line naming the file,
exit code 2, on ``kmat evaluate`` and ``kmat train --resume``; the run folder's files are left as they were.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from faults import assert_error, cli, custom_task, run_folders, train_args
from safetensors.torch import load_file, save_file

from kmat_cli.runs import Run

Tensors = dict[str, torch.Tensor]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    result = cli(*train_args(custom_task(folder / "task"), folder / "runs"))
    assert result.code == 0, result.err
    [run] = run_folders(folder / "runs")
    return run


def _method_key(tensors: Tensors) -> str:
    return next(k for k in sorted(tensors) if k.startswith("method.") and tensors[k].dim() >= 1)


def _reshaped(t: Tensors) -> None:
    key = _method_key(t)
    t[key] = torch.zeros(t[key].shape[0] + 1, *t[key].shape[1:])


def _renamed(t: Tensors) -> None:
    key = _method_key(t)
    t[key + "_old"] = t.pop(key)


def _retyped(t: Tensors) -> None:
    key = _method_key(t)
    t[key] = t[key].double()


def _extra(t: Tensors) -> None:
    t["method.stray"] = torch.zeros(3)


def _optim_shape(t: Tensors) -> None:
    key = next(k for k in sorted(t) if k.startswith("optim.") and t[k].dim() >= 1)
    t[key] = torch.zeros(t[key].numel() + 2)


TENSOR_DAMAGE: dict[str, tuple[Callable[[Tensors], None], str]] = {
    "shape": (_reshaped, "has shape"),
    "name": (_renamed, "lacks tensor"),
    "dtype": (_retyped, "torch.float64"),
    "extra": (_extra, "'stray'"),
}

FIELD_DAMAGE: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "history": (lambda s: s.update(history="x"), "'history'"),
    "history-items": (lambda s: s.update(history=[1, 2]), "'history'"),
    "optimizer": (lambda s: s.update(optimizer={"state": 5}), "'optimizer'"),
    "optimizer-index": (lambda s: s["optimizer"]["state"].update({"x": {}}), "'optimizer'"),
    "param-groups": (lambda s: s["optimizer"].update(param_groups=[]), "parameter groups"),
    "scheduler": (lambda s: s.update(scheduler=[1]), "'scheduler'"),
    "rng": (lambda s: s.update(rng={"numpy": [1]}), "'rng'"),
}


def _copy(tmp_path: Path, finished: Path, command: str) -> tuple[Path, list[str]]:
    run = tmp_path / finished.name
    shutil.copytree(finished, run)
    if command == "resume":  # a run stopped at its last checkpoint
        (run / Run.STATUS).write_text(json.dumps({"status": "interrupted", "time": 0.0}), encoding="utf-8")
        return run, ["train", "--resume", str(run)]
    return run, ["evaluate", str(run)]


def _snapshot(run: Path) -> dict[str, bytes]:
    """The run's learned state and results (a failed resume may record its status and init checks)."""
    kept = [
        p for p in run.iterdir() if p.name.startswith("checkpoint") or p.name in (Run.CONFIG, Run.METRICS)
    ]
    return {p.name: p.read_bytes() for p in kept}


@pytest.mark.parametrize("command", ["evaluate", "resume"])
@pytest.mark.parametrize("damage", sorted(TENSOR_DAMAGE))
def test_tensors_that_do_not_fit_the_run(tmp_path: Path, finished: Path, command: str, damage: str) -> None:
    run, args = _copy(tmp_path, finished, command)
    state = json.loads((run / Run.CHECKPOINT).read_text(encoding="utf-8"))
    file = run / state["tensors"]
    tensors = load_file(str(file))
    change, needle = TENSOR_DAMAGE[damage]
    change(tensors)
    save_file(tensors, str(file), metadata={"format": "kmat.checkpoint/v1"})
    before = _snapshot(run)
    assert_error(cli(*args), str(run / Run.CHECKPOINT), "does not fit this run", needle, notes=True)
    assert _snapshot(run) == before


def test_optimizer_state_of_other_shapes_on_resume(tmp_path: Path, finished: Path) -> None:
    run, args = _copy(tmp_path, finished, "resume")
    state = json.loads((run / Run.CHECKPOINT).read_text(encoding="utf-8"))
    file = run / state["tensors"]
    tensors = load_file(str(file))
    _optim_shape(tensors)
    save_file(tensors, str(file), metadata={"format": "kmat.checkpoint/v1"})
    assert_error(cli(*args), str(run / Run.CHECKPOINT), "optimizer tensor", notes=True)


@pytest.mark.parametrize("command", ["evaluate", "resume"])
@pytest.mark.parametrize("damage", sorted(FIELD_DAMAGE))
def test_damaged_checkpoint_fields(tmp_path: Path, finished: Path, command: str, damage: str) -> None:
    run, args = _copy(tmp_path, finished, command)
    path = run / Run.CHECKPOINT
    state = json.loads(path.read_text(encoding="utf-8"))
    change, needle = FIELD_DAMAGE[damage]
    change(state)
    path.write_text(json.dumps(state), encoding="utf-8")
    before = _snapshot(run)
    result = cli(*args)
    if command == "evaluate" and damage in ("rng", "param-groups"):
        assert result.code == 0, result.err  # evaluation restores neither the optimizer nor the RNG
        return
    assert_error(result, str(path), needle, notes=command == "resume")
    assert _snapshot(run) == before


@pytest.mark.usefixtures("no_progress")
def test_checkpoint_state_cannot_name_a_file_outside_the_run(trained: tuple[Path, Path]) -> None:
    _, run = trained
    state = json.loads((run / "checkpoint.json").read_text())
    for name in ("../../outside.safetensors", "/etc/passwd", "sub/x.safetensors"):
        state["tensors"] = name
        (run / "checkpoint.json").write_text(json.dumps(state))
        assert_error(cli("evaluate", run), run / "checkpoint.json", "'tensors'", name)
