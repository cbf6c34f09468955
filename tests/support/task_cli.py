"""CLI and split-file helpers of the task tests ."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_kmat(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``kmat <args>`` through the installed console script (real exit codes and stderr)."""
    exe = str(Path(sys.executable).with_name("kmat"))
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120
    )


def splits_json(root: Path) -> dict[str, Any]:
    return json.loads((root / "splits.json").read_text(encoding="utf-8"))


def entries(root: Path, modality: str) -> dict[str, list[list]]:
    """``{split: [[relpath, label, classname], ...]}`` of one modality."""
    return splits_json(root)[modality]


def name_of(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]
