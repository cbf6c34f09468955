"""The built wheel installs beside a distribution named ``tasks`` and works there.

kmat installs no top-level package but ``kmat`` and ``kmat_cli`` (its plugin folders go under ``kmat.``), so
a user's own ``tasks`` (or ``backbones``, ``transports``) distribution and kmat live side by side. Built with
``uv build``, installed with ``uv pip`` and the repository's constraints into a fresh ``uv venv`` (offline
from uv's cache when it has everything, from the index otherwise); every command runs outside the checkout,
so nothing of the repository is on ``sys.path``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SKIP_COPY = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "runs", "*.egg-info", "__pycache__", ".*cache"
)


def uv() -> str:
    found = Path(sys.executable).with_name("uv")
    path = str(found) if found.is_file() else shutil.which("uv")
    if path is None:
        pytest.skip("uv is not installed (make install puts it in .venv)")
    return path


def run(*args: str | Path, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """A command outside the checkout's environment. The timeouts catch a hang, not slowness: the commands
    need little CPU, but on a shared machine a niced process may get a few percent of a core."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def uv_offline_first(*args: str | Path, cwd: Path) -> None:
    """A uv command from the cache alone, or, where the cache lacks something, with the index."""
    if run(uv(), *args, "--offline", cwd=cwd).returncode != 0:
        done = run(uv(), *args, cwd=cwd)
        assert done.returncode == 0, done.stderr[-2000:]


def stub_wheel(folder: Path, name: str) -> Path:
    """A wheel of a distribution ``name`` with one top-level package ``name`` (``STUB = True``), written by
    hand: no build backend needed."""
    dist = f"{name}-0.0.1.dist-info"
    files = {
        f"{name}/__init__.py": "STUB = True\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    wheel = folder / f"{name}-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A folder of this module's own, outside pytest's numbered temporary folders (another pytest process of
    the same user may delete those while a venv in them is still in use)."""
    with tempfile.TemporaryDirectory(prefix="kmat-wheel-") as folder:
        yield Path(folder)


@pytest.fixture(scope="module")
def built(scratch: Path) -> Path:
    """kmat's wheel, built from a copy of the checkout (the build writes nothing into the repository)."""
    tmp = scratch / "build"
    source = tmp / "src"
    shutil.copytree(REPO, source, ignore=SKIP_COPY)
    uv_offline_first("build", "--wheel", "--out-dir", tmp / "dist", source, cwd=tmp)
    (wheel,) = (tmp / "dist").glob("kmat-*.whl")
    return wheel


def test_the_wheel_has_no_top_level_package_but_kmat_and_kmat_cli(built: Path) -> None:
    names = zipfile.ZipFile(built).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"kmat", "kmat_cli"}
    for data in (
        "kmat/backbones/phantom/phantom.safetensors",
        "kmat/backbones/phantom/phantom_vocab.json",
        "kmat/tasks/phantom/descriptions.json",
        "kmat/tasks/descriptions/skin.json",
        "kmat_cli/defaults.yaml",
        "kmat_cli/describe/templates/describe_prompt.md",
        "kmat/py.typed",
        "kmat_cli/py.typed",
    ):
        assert data in names, data


def test_kmat_installs_and_trains_beside_a_distribution_named_tasks(built: Path, scratch: Path) -> None:
    venv, work = scratch / "venv", scratch / "work"
    work.mkdir()
    python, kmat = venv / "bin" / "python", venv / "bin" / "kmat"
    done = run(uv(), "venv", "--python", sys.executable, venv, cwd=work)
    assert done.returncode == 0, done.stderr
    stub = stub_wheel(scratch, "tasks")
    constraints = REPO / "constraints.txt"
    uv_offline_first("pip", "install", "--python", python, built, stub, "-c", constraints, cwd=work)

    listed = run(kmat, "list", cwd=work)
    assert listed.returncode == 0, listed.stderr
    assert "failed to load" not in listed.stdout and "phantom" in listed.stdout and "fgw" in listed.stdout
    trained = run(
        kmat, "train", "--task", "phantom", "--epochs", "1", "--shots", "1", "--threads", "2",
        "--out", work / "runs", "--json", cwd=work, timeout=1200,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    result = json.loads(trained.stdout)
    assert Path(result["run"]).is_dir() and 0 <= result["metrics"]["lo"]["accuracy"] <= 1, result

    mine = run(python, "-c", "import tasks, kmat.tasks.phantom; print(tasks.STUB, tasks.__file__)", cwd=work)
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout.startswith("True ") and str(venv) in mine.stdout

    uninstalled = run(uv(), "pip", "uninstall", "--python", python, "tasks", cwd=work)
    assert uninstalled.returncode == 0, uninstalled.stderr
    for name in ("tasks", "backbones", "transports"):
        alone = run(python, "-c", f"import {name}", cwd=work)
        assert alone.returncode != 0 and "ModuleNotFoundError" in alone.stderr, (name, alone.stderr)
