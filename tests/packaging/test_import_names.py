"""kmat's plugin folders are imported by their installed names only.

``backbones/``, ``transports/`` and ``tasks/`` install as ``kmat.backbones``, ``kmat.transports`` and
``kmat.tasks`` (setup.py): a module path by folder name (``<plugin>.<module>``) works from a checkout and fails
everywhere kmat is installed. The imports are read with ``ast``; the entry points with ``tomllib``.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[2]
PLUGINS = ("backbones", "transports", "tasks")
ROOTS = ("kmat", "kmat_cli", *PLUGINS, "benchmarks", "examples", "tests")
# a command line or module:attr string naming a plugin module by folder name: `python -m <plugin>.<module>`
FOLDER_PATH = re.compile(rf"(?:-m\s+|[\"'])(?:{'|'.join(PLUGINS)})\.\w+[\w.]*(?::\w+)?[\"'\s`]")


def python_files() -> list[Path]:
    return sorted(
        p
        for root in ROOTS
        for p in (REPO / root).rglob("*.py")
        if not {"__pycache__", "build", ".venv"} & set(p.relative_to(REPO).parts)
    )


def folder_imports(path: Path) -> list[str]:
    """The import statements of a file that name a plugin package by its folder (``from <plugin>.<module> import``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        found += [f"{path.relative_to(REPO)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in PLUGINS]
    return found


def test_no_python_file_imports_a_plugin_by_its_folder_name() -> None:
    bad = [line for path in python_files() for line in folder_imports(path)]
    assert not bad, "import kmat.backbones / kmat.transports / kmat.tasks instead:\n" + "\n".join(bad)


def test_no_module_path_string_names_a_plugin_by_its_folder_name() -> None:
    """``python -m``, ``importlib`` and ``module:attr`` strings in code, docs and the Makefile."""
    texts = [*python_files(), *(REPO / "docs").rglob("*.md"), REPO / "README.md", REPO / "Makefile"]
    bad = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in texts
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if FOLDER_PATH.search(line)
    ]
    assert not bad, "\n".join(bad)


def test_every_built_in_entry_point_is_an_installed_kmat_module() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    targets = [v for group in project["entry-points"].values() for v in group.values()]
    assert len(targets) >= 20
    modules = sorted({t.partition(":")[0] for t in targets})
    assert all(m.split(".")[0] in ("kmat", "kmat_cli") for m in modules), modules
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    assert not missing, f"entry points name modules that do not import: {missing}"
