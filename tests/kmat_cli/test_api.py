"""The plugin boundary: ``kmat_cli.api`` exports what a plugin of each kind needs, the shipped plugins
import nothing else from kmat, and a method plugin written against ``kmat_cli.api`` alone trains."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from repo_paths import REPO
from toyworld import setup

import kmat_cli.api as api
from kmat_cli import registry

PLUGIN_TREES = ["backbones", "transports", "tasks", "examples/plugin-package"]


def test_every_export_resolves() -> None:
    for name in api.__all__:
        assert getattr(api, name) is not None, name
    assert {"Method", "MethodSetup", "PromptLearner", "Transport", "Backbone", "Task"} <= set(api.__all__)


def test_importing_the_api_stays_cheap() -> None:
    """The torch-based exports load on first use: ``import kmat_cli.api`` does not import torch."""
    code = "import sys, kmat_cli.api; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


def _kmat_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kmat_cli"):
            found += (
                [node.module] if node.module != "kmat_cli" else [f"kmat_cli.{a.name}" for a in node.names]
            )
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("kmat_cli")]
    return found


@pytest.mark.parametrize("tree", PLUGIN_TREES)
def test_shipped_plugins_import_only_the_api(tree: str) -> None:
    files = sorted((REPO / tree).rglob("*.py"))
    assert files
    outside = {f"{p.relative_to(REPO)}: {m}" for p in files for m in _kmat_imports(p) if m != "kmat_cli.api"}
    assert not outside


METHOD_PLUGIN = '''
"""A method plugin that imports only kmat_cli.api: CoOp-like prompts, one per modality."""
import torch.nn.functional as F

from kmat_cli.api import Method, MethodSetup, PromptLearner


class TwoContexts(Method):
    def __init__(self, setup: MethodSetup, *, n_ctx: int = 2) -> None:
        super().__init__(setup)
        texts = {m: [f"{w} {c}." for c in self.class_names] for m, w in setup.modalities.items()}
        self.prompts = PromptLearner(self.backbone, texts, n_ctx=n_ctx)

    def text_embeddings(self):
        return self.prompts()

    def losses(self, features, labels):
        return {"ce": F.cross_entropy(self.logits(features, "hi"), labels)}
'''


def test_a_method_plugin_needs_only_the_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_method.py").write_text(textwrap.dedent(METHOD_PLUGIN), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _kmat_imports(tmp_path / "my_method.py") == ["kmat_cli.api"]
    cls = registry.get("methods", "my_method:TwoContexts")
    method = cls(setup(), n_ctx=3)
    features = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    loss = sum(method.losses(features, torch.tensor([0, 1, 2, 0, 1, 2])).values())
    loss.backward()
    grads = [p.grad for p in method.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
