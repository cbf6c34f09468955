"""The backbone a prompts file (or the config.yaml beside it) names: never code of the file's choosing, only
the backbone's own options with values of their types; a plugin by import path only with the user's opt-in."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from faults import CLASSES, assert_error, cli, png, prompts_file, two_class_prompts

pytestmark = pytest.mark.usefixtures("no_progress")


# --------------------------------------------------------------------------- a prompts file never runs code
def _evil_module(folder: Path, marker: Path) -> Path:
    """A folder with a module whose import (and whose class) creates ``marker``."""
    folder.mkdir(parents=True, exist_ok=True)
    code = f"open({str(marker)!r}, 'w').close()\n\nclass Backbone:\n    def __init__(self, **kw):\n"
    code += f"        open({str(marker)!r}, 'w').close()\n"
    (folder / "kmat_evil_plugin.py").write_text(code)
    (folder / "__init__.py").write_text(code)
    return folder


def _code_configs(evil: Path, marker: Path) -> dict[str, Any]:
    return {
        "os-system": {"name": "os:system", "command": f"touch {marker}"},
        "subprocess-run": {"name": "subprocess:run", "args": ["touch", str(marker)]},
        "builtins-exec": {"name": "builtins:exec", "source": f"open({str(marker)!r}, 'w')"},
        "importable-module": {"name": "kmat_evil_plugin:Backbone"},
        "file-path": {"name": str(evil / "kmat_evil_plugin.py")},
        "folder-path": {"name": str(evil)},
        "local-dir-with-python": {"name": "open_clip", "model": f"local-dir:{evil}"},
    }


@pytest.mark.parametrize(
    "case",
    [
        "os-system",
        "subprocess-run",
        "builtins-exec",
        "importable-module",
        "file-path",
        "folder-path",
        "local-dir-with-python",
    ],
)
@pytest.mark.parametrize("where", ["metadata", "config-beside"])
def test_a_prompts_file_cannot_run_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, where: str
) -> None:
    """Whatever a prompts file (or a config.yaml beside it) names, no code of its choosing runs: exit 2 with
    one line naming the file, and the marker the code would create does not exist."""
    import yaml

    marker = tmp_path / "pwned"
    evil = _evil_module(tmp_path / "evil", marker)
    monkeypatch.syspath_prepend(str(evil))  # the module is importable: only the check keeps it out
    section = _code_configs(evil, marker)[case]
    folder = tmp_path / "bundle"
    folder.mkdir()
    if where == "metadata":
        prompts = prompts_file(
            folder / "p.safetensors", CLASSES, {"kmat.backbone_config": json.dumps(section)}
        )
        named = prompts
    else:
        prompts = prompts_file(folder / "p.safetensors", CLASSES, {"kmat.backbone_config": None})
        named = folder / "config.yaml"
        named.write_text(yaml.safe_dump({"backbone": section}))
    result = cli("predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--workers", "0")
    assert not marker.exists(), f"code named by {where} ran"
    assert_error(result, evil if case == "local-dir-with-python" else named)  # open_clip names its folder


def test_a_run_config_may_name_a_plugin_by_import_path_with_the_opt_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``module:attr`` in a run folder's config.yaml (``--run``) is imported once the user opts in with
    KMAT_TRUST_CODE=1 (tests/kmat_cli/test_registry_trust.py: refused without it)."""
    import yaml

    monkeypatch.setenv("KMAT_TRUST_CODE", "1")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "finished"}))
    (run / "config.yaml").write_text(
        yaml.safe_dump({"backbone": {"name": "kmat.backbones.phantom:PhantomBackbone"}})
    )
    prompts_file(run / "prompts.safetensors", CLASSES, {"kmat.backbone_config": None})
    result = cli("predict", png(tmp_path / "x.png", 1), "--run", run, "--workers", "0")
    assert result.code == 0, result.err
    assert next(csv.DictReader(io.StringIO(result.out)))["label"] in CLASSES


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"name": "phantom", "command": "touch x"}, "'command'"),
        ({"name": "phantom", "device": "cuda"}, "'device'"),
        ({"name": "phantom", "vision_only": False}, "'vision_only'"),
        ({"name": "phantom", "weights": 5}, "'weights'"),
        ({"name": "phantom", "weights": ["a"]}, "'weights'"),
        ({"name": "open_clip", "model": {"a": 1}}, "'model'"),
        ({"name": "open_clip", "pretrained": 1.5}, "'pretrained'"),
        ({"name": 7}, "kmat.backbone_config"),
    ],
)
def test_prompts_file_backbone_options_must_be_the_backbones_own(
    tmp_path: Path, section: dict, needle: str
) -> None:
    """Options from a file are the backbone's keyword-only options (not the run-time ``device``/
    ``vision_only``), with values of the option's type; anything else names the option, nothing is built."""
    prompts = two_class_prompts(tmp_path, {"kmat.backbone_config": json.dumps(section)})
    result = cli("predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--workers", "0")
    line = assert_error(result, prompts, needle)
    assert "does not fit" not in line  # refused by the check, not by the constructor's TypeError
