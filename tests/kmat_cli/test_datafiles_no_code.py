"""Files are data: nothing is ever unpickled, checked in the source and by feeding pickles to every reader."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from faults import REPO, assert_error, cli, custom_task, pickle_bomb, png, run_folders, status, train_args

pytestmark = pytest.mark.usefixtures("no_progress")


SOURCE_DIRS = ("kmat_cli", "backbones", "transports", "tasks", "examples", "benchmarks")


PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


# ------------------------------------------------------------------------------------------ no pickle: source
def _name(node: ast.AST) -> str:
    """Dotted name of a call's function (``torch.load``, ``np.load``, ``load_state_dict``)."""
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _kw(call: ast.Call, name: str) -> Any:
    for kw in call.keywords:
        if kw.arg == name:
            return ast.unparse(kw.value)
    return None


def pickle_uses(source: str, where: str) -> list[str]:
    """Every way ``source`` could unpickle: imports of pickle-like modules, ``torch.load`` (and open_clip's
    ``load_checkpoint``/``load_state_dict`` file loaders) without ``weights_only=True``, ``yaml.load`` without
    a safe loader and ``yaml.unsafe_load``/``full_load``, ``np.load(allow_pickle=True)``, ``pd.read_pickle``,
    ``torch.jit.load`` and ``torch.package``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [
                f"{line}: import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLE_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES | {
            "torch"
        }:
            if (node.module or "").split(".")[0] in PICKLE_MODULES or node.module == "torch.package":
                found.append(f"{line}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _name(node.func)
            last = name.rsplit(".", 1)[-1]
            if name in ("torch.load", "load_checkpoint") or (
                last in ("load_checkpoint", "load_state_dict") and not isinstance(node.func, ast.Attribute)
            ):
                if _kw(node, "weights_only") != "True":
                    found.append(f"{line}: {name}(...) without weights_only=True")
            elif (
                name == "yaml.load"
                and "Safe" not in str(_kw(node, "Loader"))
                and not (len(node.args) > 1 and "Safe" in ast.unparse(node.args[1]))
            ):
                found.append(f"{line}: yaml.load without a SafeLoader")
            elif name in ("yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"):
                found.append(f"{line}: {name}")
            elif (
                last == "load"
                and name.split(".")[0] in ("np", "numpy")
                and _kw(node, "allow_pickle") == "True"
            ):
                found.append(f"{line}: {name}(allow_pickle=True)")
            elif last == "read_pickle" or name in ("torch.jit.load", "torch.package.PackageImporter"):
                found.append(f"{line}: {name}")
    return found


def test_the_pickle_scanner_finds_every_kind() -> None:
    bad = """
import pickle
import dill as d
from joblib import load
import torch, yaml, numpy as np
torch.load("x.pt")
torch.load("x.pt", weights_only=False)
yaml.load(text)
yaml.load(text, Loader=yaml.Loader)
yaml.unsafe_load(text)
np.load("a.npy", allow_pickle=True)
from open_clip.factory import load_state_dict
load_state_dict("w.bin")
torch.jit.load("m.pt")
"""
    assert len(pickle_uses(bad, "bad.py")) == 11
    good = """
import torch, yaml, numpy as np
torch.load("x.pt", weights_only=True)
yaml.safe_load(text)
yaml.load(text, Loader=yaml.SafeLoader)
np.load("a.npy")
model.load_state_dict(state)
"""
    assert pickle_uses(good, "good.py") == []


def test_no_pickle_anywhere_in_the_source_tree() -> None:
    files = [p for d in SOURCE_DIRS for p in sorted((REPO / d).rglob("*.py")) if ".venv" not in p.parts]
    assert len(files) > 50
    found = [
        hit for p in files for hit in pickle_uses(p.read_text(encoding="utf-8"), str(p.relative_to(REPO)))
    ]
    assert not found, "\n".join(found)


# --------------------------------------------------------------------------------------- no pickle: behaviour
PICKLED = [
    "checkpoint-tensors",
    "checkpoint-state",
    "prompts-run",
    "prompts-file",
    "run-config",
    "config-flag",
    "descriptions",
    "split-json",
    "feature-cache",
    "backbone-weights",
]


def _pickle_place(target: str, tmp_path: Path, fresh_cache: Path, run: Path) -> Path:
    """Where the pickle of ``target`` goes (the backbone weights: a local open_clip folder, made here)."""
    places = {
        "checkpoint-state": run / "checkpoint.json",
        "prompts-run": run / "prompts.safetensors",
        "prompts-file": run / "prompts.safetensors",
        "run-config": run / "config.yaml",
        "config-flag": tmp_path / "c.yaml",
        "descriptions": tmp_path / "d.json",
        "split-json": tmp_path / "task" / "splits.json",
    }
    if target in places:
        return places[target]
    if target == "checkpoint-tensors":
        [bad] = run.glob("checkpoint-*.safetensors")
        return bad
    if target == "feature-cache":
        return next((fresh_cache / "features").glob("*/*.safetensors"))
    bad = tmp_path / "weights" / "open_clip_pytorch_model.bin"
    bad.parent.mkdir()
    from folders import native_config  # the backbone tests' tiny open_clip config

    (bad.parent / "open_clip_config.json").write_text(json.dumps(native_config()))
    return bad


def _read_pickled(
    target: str, bad: Path, trained: tuple[Path, Path], tmp_path: Path
) -> tuple[Any, list[Any]]:
    """Run the command that reads ``bad``; its result and what its error must name."""
    task, run = trained
    out = tmp_path / "r2"
    if target in ("checkpoint-tensors", "checkpoint-state", "run-config"):
        return cli("evaluate", run), [bad]
    if target in ("prompts-run", "prompts-file"):
        source = ("--run", run) if target == "prompts-run" else ("--embeddings", bad)
        return cli("predict", png(tmp_path / "x.png", 1), *source), [bad, "not a safetensors file"]
    if target in ("config-flag", "descriptions"):
        flag = "--config" if target == "config-flag" else "--descriptions"
        return cli(*train_args(task, out, flag, bad)), [bad]
    if target == "split-json":
        spec = custom_task(tmp_path / "task2", per_split={"train": 1}, data="splits.json")
        shutil.copy(bad, tmp_path / "task2" / "splits.json")
        return cli(*train_args(spec, out)), [tmp_path / "task2" / "splits.json", "cannot read split file"]
    if target == "feature-cache":
        return cli(*train_args(task, out)), []
    weights = ("--backbone", "open_clip", "--set", f"backbone.model=local-dir:{bad.parent}")
    return cli(*train_args(task, out, *weights)), [f"local-dir:{bad.parent.name}", "Weights only load failed"]


@pytest.mark.parametrize("target", PICKLED)
def test_a_pickle_in_place_of_any_file_is_refused_never_run(
    tmp_path: Path, fresh_cache: Path, trained: tuple[Path, Path], target: str
) -> None:
    """A ``torch.save`` file whose unpickling would create a marker file, put where kmat reads a checkpoint,
    prompts, a config, descriptions, a split file, a cached feature shard or backbone weights."""
    marker = tmp_path / "PICKLE-RAN"
    bad = _pickle_place(target, tmp_path, fresh_cache, trained[1])
    pickle_bomb(bad, marker)
    result, needles = _read_pickled(target, bad, trained, tmp_path)
    if target == "feature-cache":  # a foreign file in the cache is ignored and the features recomputed
        assert result.code == 0, result.err
        [again] = run_folders(tmp_path / "r2")
        assert status(again) == "finished"
    else:  # torch itself refuses to unpickle the backbone weights: a runtime failure, exit 1
        assert_error(result, *needles, code=1 if target == "backbone-weights" else 2)
    assert not marker.exists(), "a pickle was executed"
