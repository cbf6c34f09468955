"""Files: nothing is ever unpickled (checked in the source and by feeding pickles to every reader), paths
from task files cannot leave their folder, and API keys are never written anywhere."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from faults import (
    REPO,
    assert_error,
    cli,
    custom_task,
    pickle_bomb,
    png,
    run_folders,
    status,
    train_args,
)

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


# --------------------------------------------------------------------------------------------- path escapes
ESCAPES = {
    "yaml-data-dotdot": ({"data": {"hi": "../../../../etc", "lo": "lo"}}, "data.hi", "escapes"),
    "yaml-data-absolute": ({"data": {"hi": "/etc", "lo": "lo"}}, "data.hi", "must be relative"),
    "yaml-data-json-abs": ({"data": "/etc/passwd"}, "data", "must be relative"),
    "yaml-descriptions-dotdot": ({"descriptions": "../../etc/passwd"}, "descriptions", "escapes"),
    "yaml-descriptions-abs": ({"descriptions": "/etc/passwd"}, "descriptions", "must be relative"),
    "yaml-config-out": ({"config": {"out": "/tmp/elsewhere"}}, "config.out", "pass --out"),
    "yaml-config-descriptions": ({"config": {"descriptions": "/etc/passwd"}}, "config.descriptions", ""),
    "yaml-config-task": ({"config": {"task": {"name": "chest"}}}, "config.task", ""),
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
def test_task_file_paths_cannot_leave_its_folder(tmp_path: Path, case: str) -> None:
    spec, key, needle = ESCAPES[case]
    task = custom_task(tmp_path / "task", per_split={"train": 2}, **spec)
    result = cli(*train_args(task, tmp_path / "runs"))
    assert_error(result, task, key, needle)
    assert not run_folders(tmp_path / "runs")


LISTED = [
    "../../etc/passwd",
    "/etc/passwd",
    "img/../../secret.png",
    "C:/Windows/win.ini",
    "img\\..\\..\\x.png",
]


@pytest.mark.parametrize("entry", LISTED)
@pytest.mark.parametrize("kind", ["csv", "json", "prepared"])
def test_listed_paths_cannot_leave_the_data_root(tmp_path: Path, kind: str, entry: str) -> None:
    folder = tmp_path / "task"
    png(folder / "img" / "a.png", 1)
    extra: list[str] = []
    if kind == "csv":
        (folder / "hi.csv").write_text(f"path,label,split\nimg/a.png,0,train\n{entry},1,train\n")
        task: Any = custom_task(folder, data={"hi": "hi.csv", "lo": "hi.csv"})
        needles = [folder / "hi.csv", "row 3"]
    else:
        doc = {"train": [["img/a.png", 0], [entry, 1]], "val": [], "test": []}
        if kind == "json":
            (folder / "splits.json").write_text(json.dumps({"hi": doc, "lo": doc}))
            task = custom_task(folder, data="splits.json")
        else:  # a built-in task's prepared data root (kmat data prepare writes splits.json)
            (folder / "splits.json").write_text(
                json.dumps({"format": "kmat.splits/v1", "hi": doc, "lo": doc})
            )
            task, extra = "chest", ["--set", f"task.root={folder}"]
        needles = [folder / "splits.json", "hi.train[1]"]
    result = cli(*train_args(task, tmp_path / "runs", *extra))
    line = assert_error(result, *needles)
    assert "data root" in line and repr(entry)[1:-1].replace("\\\\", "\\") in line.replace("\\\\", "\\")
    assert not run_folders(tmp_path / "runs")


def test_checkpoint_state_cannot_name_a_file_outside_the_run(trained: tuple[Path, Path]) -> None:
    _, run = trained
    state = json.loads((run / "checkpoint.json").read_text())
    for name in ("../../outside.safetensors", "/etc/passwd", "sub/x.safetensors"):
        state["tensors"] = name
        (run / "checkpoint.json").write_text(json.dumps(state))
        assert_error(cli("evaluate", run), run / "checkpoint.json", "'tensors'", name)


def test_symbolic_links_inside_the_data_root_are_followed(tmp_path: Path) -> None:
    """The choice: links are followed (``kmat data prepare`` itself links images into the root, and the
    owner of a data root decides what it links to); only the paths *written* in task files are confined."""
    outside = tmp_path / "elsewhere"
    png(outside / "x.png", 7)
    png(outside / "class-b" / "0.png", 8)
    png(outside / "class-b" / "1.png", 9)
    task = custom_task(tmp_path / "task", per_split={"train": 2})
    first = tmp_path / "task" / "hi" / "train" / "smooth nodule" / "0.png"
    first.unlink()
    first.symlink_to(outside / "x.png")
    linked = tmp_path / "task" / "hi" / "train" / "spiculated mass"
    shutil.rmtree(linked)
    linked.symlink_to(outside / "class-b", target_is_directory=True)
    result = cli(*train_args(task, tmp_path / "runs"))
    assert result.code == 0, result.err
    [run] = run_folders(tmp_path / "runs")
    assert status(run) == "finished"


# --------------------------------------------------------------------------------------------- API keys
def test_api_keys_are_never_written(
    tmp_path: Path, chat_server: Any, monkeypatch: pytest.MonkeyPatch, fresh_cache: Path
) -> None:
    """``kmat describe`` with a key from the environment (a success, a cached rerun, a rejected key whose
    401 message echoes it), then a training run with the key set: no file written anywhere, and no output
    line, contains the key."""
    key = chat_server.key
    monkeypatch.chdir(tmp_path)
    task = custom_task(tmp_path / "task", per_split={"train": 2, "test": 1})
    common = ["describe", "--task", task, "-n", "4", "--base-url", chat_server.base_url, "--model", "m"]
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("MY_KEY", key)
    outputs = [cli(*common, "--output", tmp_path / "d.json")]
    outputs.append(cli(*common, "--output", tmp_path / "d2.json"))  # from the cache
    outputs.append(cli(*common, "--api-key-env", "MY_KEY", "--no-cache", "--output", tmp_path / "d3.json"))
    assert all(r.code == 0 for r in outputs), [r.err for r in outputs]
    assert all(h.get("Authorization") == f"Bearer {key}" for h in chat_server.headers)  # the key was used
    monkeypatch.setenv("OPENAI_API_KEY", key + "-wrong")
    rejected = cli(*common, "--no-cache", "--output", tmp_path / "d4.json")
    assert_error(rejected, "rejected the API key")
    outputs.append(rejected)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    outputs.append(cli(*train_args(task, tmp_path / "runs", "--descriptions", tmp_path / "d.json")))
    assert outputs[-1].code == 0, outputs[-1].err
    outputs.append(cli("env"))
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" and "describe" in p.parts for p in written), "the request cache was used"
    assert len(written) > 20
    for needle in (key, key + "-wrong"):
        leaks = [p for p in written if needle.encode() in p.read_bytes()]
        assert not leaks, f"the API key was written to {leaks}"
        assert not [r for r in outputs if needle in r.out or needle in r.err], "the API key was printed"
