"""What a run ran on: versions, device, git commit (saved as ``env.json`` and shown by ``kmat env``)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from kmat_cli import __version__

PACKAGES = ("torch", "torchvision", "open_clip_torch", "transformers", "timm", "pot", "numpy", "safetensors")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(path: str | Path | None = None) -> str | None:
    """The commit of the git checkout kmat runs from, if any (with ``+dirty`` for local changes)."""
    where = Path(path) if path else Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"cuda": torch.cuda.is_available(), "threads": torch.get_num_threads()}
    if info["cuda"]:
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def cache_dir() -> Path:
    """kmat's cache root: ``$KMAT_CACHE``, else the user cache dir (e.g. ``~/.cache/kmat``); a folder kmat
    owns (:func:`kmat_cli.atomic.own`: no link below it is written or read through)."""
    from kmat_cli import atomic

    env = os.environ.get("KMAT_CACHE")
    if env:
        root = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir("kmat"))
    atomic.own(root)
    return root


def make_cache_folder(path: str | Path) -> Path:
    """Create the cache folder ``path`` if missing; a one-line UsageError naming it when it cannot be made
    (e.g. under an unwritable HOME), saying to set ``KMAT_CACHE``. An existing read-only folder is returned
    as it is: its users decide what they can do without writing. A folder under the cache root that is,
    or lies under, a symbolic link is refused (UsageError naming the link)."""
    from kmat_cli import atomic
    from kmat_cli.errors import UsageError

    path = Path(path)
    cache_dir()  # declares the cache root as kmat's own
    atomic.check_owned(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"{path}: cannot create kmat's cache folder ({reason}); set KMAT_CACHE to a writable folder"
        ) from exc
    return path


def collect() -> dict[str, Any]:
    return {
        "kmat": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "packages": package_versions(),
        "device": device_info(),
        "git_commit": git_commit(),
        "cache_dir": str(cache_dir()),
        "hf_home": os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface")),
    }
