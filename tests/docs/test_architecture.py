"""docs/architecture.md matches the tree, and the dependency rules it states hold.

The page names every module by path (`kmat_cli/config.py`, `kmat_cli/predict/`); a name under one of its layer
headings puts the module in that layer. The imports are read from the source with ``ast`` (every import
statement, those inside functions too: a lazy import is still a dependency), never by importing the code.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from repo_paths import REPO

DOC = REPO / "docs" / "architecture.md"
PLUGINS = ("backbones", "transports", "tasks")
LAYERS = {
    "## Core": "core",
    "## Applications": "application",
    "## Front ends": "front",
    "## Plugins": "plugin",
}
PATH = re.compile(r"`((?:kmat_cli|kmat|backbones|transports|tasks)/[A-Za-z0-9_./]*)`")
OUTSIDE = re.compile(r"`((?:benchmarks|examples)/[A-Za-z0-9_./-]*)`")


def module_name(path: Path) -> str:
    """``kmat_cli/predict/run.py`` -> ``kmat_cli.predict.run``; a package's ``__init__.py`` -> the package."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(*roots: str) -> Iterator[Path]:
    for root in roots:
        yield from sorted(p for p in (REPO / root).rglob("*.py") if "__pycache__" not in p.parts)


def named_in_doc() -> dict[str, str | None]:
    """Every path the page names, with the layer of the heading it stands under (None outside them)."""
    named: dict[str, str | None] = {}
    layer = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            layer = next((v for k, v in LAYERS.items() if line.startswith(k)), None)
        for path in PATH.findall(line):
            if named.get(path) is None:
                named[path] = layer
    return named


def layer_of(module: str, layers: dict[str, str]) -> str:
    """The layer of a module: that of the longest named path containing it."""
    candidates = [m for m in layers if module == m or module.startswith(m + ".")]
    assert candidates, f"{module} is in no layer of docs/architecture.md"
    return layers[max(candidates, key=len)]


def is_module(name: str) -> bool:
    """A dotted name is a module or package of this repository."""
    path = REPO / name.replace(".", "/")
    return path.is_dir() or path.with_suffix(".py").is_file()


def folder_name(module: str) -> str:
    """The name of a module by its folder: a plugin folder ``<plugin>/`` installs as ``kmat.<plugin>``, so
    ``kmat.<plugin>.x`` -> ``<plugin>.x``; other names are returned as they are."""
    head, _, rest = module.partition(".")
    return rest if head == "kmat" and rest.split(".")[0] in PLUGINS else module


def imports(path: Path) -> set[str]:
    """The kmat modules a source file imports (``from pkg import sub`` counts as ``pkg.sub`` when sub is a
    module), relative imports resolved, by folder name (:func:`folder_name`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from .x import y: x in this package (one dot), or above it
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base]).strip(".")
            for alias in node.names:
                sub = folder_name(f"{base}.{alias.name}")
                found.add(sub if is_module(sub) else folder_name(base))
    found = {folder_name(m) for m in found}
    return {m for m in found if m.split(".")[0] in ("kmat", "kmat_cli", *PLUGINS)}


def test_every_module_the_page_names_exists() -> None:
    missing = [p for p in named_in_doc() if not (REPO / p).exists()]
    assert not missing, f"docs/architecture.md names what the tree lacks: {missing}"


def test_every_module_and_package_of_kmat_cli_is_named() -> None:
    named = {p.rstrip("/") for p in named_in_doc()}
    wanted = {str(p.relative_to(REPO)) for p in sources("kmat_cli") if p.name != "__init__.py"}
    wanted |= {str(p.parent.relative_to(REPO)) for p in sources("kmat_cli") if p.name == "__init__.py"}
    wanted.discard("kmat_cli")  # the whole; its own __init__.py is named as a core module
    wanted |= {"kmat", *PLUGINS}
    assert not sorted(wanted - named), f"docs/architecture.md does not name: {sorted(wanted - named)}"


def layers() -> dict[str, str]:
    """Module (or package) name -> layer, from the page's layer sections."""
    out = {}
    for path, layer in named_in_doc().items():
        if layer is not None:
            name = module_name(REPO / path) if path.endswith(".py") else path.rstrip("/").replace("/", ".")
            out[name] = layer
    return out


# (importer's layer, imported layer) pairs the rules allow; same-layer imports are allowed separately
ALLOWED = {("application", "core"), ("front", "core"), ("front", "application")}


def test_the_dependency_rules_hold() -> None:
    """The core imports no application or front end; an application imports the core and itself only; front
    ends (commands, app, the Python API) import both; kmat_cli reaches plugins only through the registry;
    a plugin imports nothing of kmat but kmat_cli.api, and no other plugin package."""
    table = layers()
    broken = []
    for path in sources("kmat_cli", "kmat", *PLUGINS):
        importer = module_name(path)
        mine = layer_of(importer, table)
        for imported in sorted(imports(path)):
            theirs = layer_of(imported, table)
            if mine == "plugin":
                ok = imported == "kmat_cli.api" or imported.split(".")[0] == importer.split(".")[0]
            elif mine == theirs == "application":
                ok = imported.split(".")[:2] == importer.split(".")[:2]  # within its own package
            else:
                ok = mine == theirs or (mine, theirs) in ALLOWED
            if not ok:
                broken.append(f"{importer} ({mine}) imports {imported} ({theirs})")
    assert not broken, "\n".join(broken)


def test_no_module_of_kmat_kmat_cli_or_the_plugins_imports_itself_through_a_cycle() -> None:
    """Imports inside functions count: a lazy import hides a cycle from Python, not from a reader."""
    graph = {module_name(p): imports(p) for p in sources("kmat", "kmat_cli", *PLUGINS)}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_every_benchmark_script_and_example_is_named_and_exists() -> None:
    """benchmarks/ and examples/ are on the page too: each script and example, and nothing that is gone."""
    named = set(OUTSIDE.findall(DOC.read_text(encoding="utf-8")))
    for path in named:
        assert (REPO / path).exists(), f"docs/architecture.md names {path}, which does not exist"
    scripts = {f"benchmarks/{p.name}" for p in (REPO / "benchmarks").iterdir() if p.suffix in (".py", ".sh")}
    examples = {
        f"examples/{p.name}/" if p.is_dir() else f"examples/{p.name}"
        for p in (REPO / "examples").iterdir()
        if not p.name.startswith((".", "_"))
    }
    missing = sorted((scripts | examples) - named)
    assert not missing, f"docs/architecture.md does not name {missing}"
