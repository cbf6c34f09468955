"""Every fenced code block of README.md and docs/*.md that can run offline runs, against the phantom world.

A block runs in a folder shared by the blocks of its file (in order). README.md's folder starts empty, as a
fresh clone's would: its blocks make every file they use. For docs/*.md it holds what those docs refer to:
``runs/train/phantom-kmat-s1-1`` (a short K-MaT run), ``prompts.safetensors`` exported from it, ``scans/``
(phantom low-end test images) and ``scan.png``. ``bash`` blocks run with ``bash -eo pipefail`` and the
environment's ``kmat`` on PATH; ``python`` blocks run in this process with their own globals; ``yaml``
blocks must load (a task file also validates as one); ``toml`` blocks must parse. Other kinds (text,
json with elisions) are illustrations.

An HTML comment on the line before a block marks it: ``<!-- snippet: skip (reason) -->`` for blocks that
need the network, real data, a GPU or minutes (skipped with the reason), ``<!-- snippet: slow -->`` for
blocks that run only with ``-m slow``. An unmarked block that fails fails this test.

The README's quick example (``kmat train --task phantom --epochs 5``) beats zero-shot on the low end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kmat_runner import cli
from repo_paths import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARK = re.compile(r"<!--\s*snippet:\s*(skip|slow)\s*(?:\((.*)\))?\s*-->")
RUNNABLE = ("bash", "sh", "python", "yaml", "toml")


@dataclass(frozen=True)
class Block:
    file: Path
    line: int
    kind: str
    code: str
    mark: str | None
    reason: str

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a markdown file with the mark on the non-blank line before each."""
    text = path.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        before = [line for line in text[: m.start()].splitlines() if line.strip()]
        mark = MARK.search(before[-1]) if before else None
        line = text[: m.start()].count("\n") + 1
        kind = m.group(1).lower()
        found.append(
            Block(
                path, line, kind, m.group(2), mark.group(1) if mark else None, (mark and mark.group(2)) or ""
            )
        )
    return found


ALL = [b for path in DOCS for b in blocks(path)]


def _params() -> list:
    out = []
    for b in ALL:
        if b.kind not in RUNNABLE:
            continue
        marks = [pytest.mark.slow] if b.mark == "slow" else []
        out.append(pytest.param(b, id=b.id, marks=marks))
    return out


def test_every_mark_says_why_and_sits_on_a_block() -> None:
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        marked = {b.line for b in blocks(path) if b.mark}
        for m in MARK.finditer(text):
            assert m.group(1) == "slow" or (m.group(2) or "").strip(), f"{path}: skip without a reason"
        assert len(marked) == len(MARK.findall(text)), f"{path}: a snippet mark not right before a block"


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the docs refer to, made once: a short phantom K-MaT run, its prompts, phantom images."""
    import kmat
    from kmat_cli import registry

    base = tmp_path_factory.mktemp("docs-world")
    cwd = os.getcwd()
    os.chdir(base)
    try:
        run = kmat.train(task="phantom", method="kmat", seed=1, epochs=1, shots=2, threads=1)
        assert run.path == Path("runs/train/phantom-kmat-s1-1")
        kmat.export(run, base / "prompts.safetensors")
    finally:
        os.chdir(cwd)
    (base / "scans").mkdir()
    samples = registry.get("tasks", "phantom")().split("lo", "test")[::50]  # 6 images, every class pair
    for s in samples:
        shutil.copy(s.path, base / "scans" / f"{s.label}-{s.path.name}")
    shutil.copy(samples[0].path, base / "scan.png")
    (base / "more").mkdir()
    return base


@pytest.fixture(scope="session")
def folders(world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    """One folder per markdown file (made on first use), shared by that file's blocks: a copy of the world,
    empty for README.md."""

    class Folders(dict):
        def __missing__(self, doc: Path) -> Path:
            folder = tmp_path_factory.mktemp(doc.stem)
            if doc != REPO / "README.md":  # the README makes its own files, from nothing
                shutil.copytree(world, folder, dirs_exist_ok=True)
            self[doc] = folder
            return folder

    return Folders()


def _run_bash(code: str, folder: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("KMAT_DEBUG", None)
    result = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", code],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-3000:]}"


def _run_python(code: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(folder)
    exec(compile(code, "<snippet>", "exec"), {"__name__": "__snippet__"})


def _check_yaml(code: str, folder: Path) -> None:
    data = yaml.safe_load(code)
    if isinstance(data, dict) and "class_names" in data:  # a custom task file
        from kmat.tasks.custom import load_spec

        (folder / "snippet-task.yaml").write_text(code, encoding="utf-8")
        load_spec(folder / "snippet-task.yaml")


@pytest.mark.parametrize("block", _params())
def test_doc_block_runs(block: Block, folders: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    if block.mark == "skip":
        pytest.skip(block.reason)
    if block.kind == "toml":
        tomllib = pytest.importorskip("tomllib")  # Python 3.11+
        tomllib.loads(block.code)
        return
    folder = folders[block.file]
    if block.kind in ("bash", "sh"):
        _run_bash(block.code, folder)
    elif block.kind == "python":
        _run_python(block.code, folder, monkeypatch)
    else:
        _check_yaml(block.code, folder)


@pytest.mark.slow
def test_the_readme_quick_example_beats_zero_shot_on_the_low_end(tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs"
    _, quick, _ = cli("train", "--epochs", "5", "--json", "--out", out)
    _, zero, _ = cli("train", "-m", "zeroshot", "--json", "--out", out)
    assert json.loads(quick)["metrics"]["lo"]["accuracy"] > json.loads(zero)["metrics"]["lo"]["accuracy"]
    assert "kmat train --task phantom --epochs 5" in (REPO / "README.md").read_text(encoding="utf-8")
