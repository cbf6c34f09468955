"""kmat for notebooks and scripts: ``import kmat; run = kmat.train(task="phantom", epochs=2)``.

The functions are those of :mod:`kmat_cli.session`, which the ``kmat`` command calls too. They load on first
use, so that importing a plugin package (``kmat.backbones``, ``kmat.transports``, ``kmat.tasks``) costs no
more than the plugin itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kmat_cli import __version__

if TYPE_CHECKING:
    from kmat_cli.errors import KmatError, RuntimeFailure, UsageError
    from kmat_cli.session import (
        Run,
        evaluate,
        export,
        load_prompts,
        predict,
        sample_images,
        train,
        train_config,
    )

_HOME = {
    "KmatError": "kmat_cli.errors",
    "RuntimeFailure": "kmat_cli.errors",
    "UsageError": "kmat_cli.errors",
    "Run": "kmat_cli.session",
    "evaluate": "kmat_cli.session",
    "export": "kmat_cli.session",
    "load_prompts": "kmat_cli.session",
    "predict": "kmat_cli.session",
    "sample_images": "kmat_cli.session",
    "train": "kmat_cli.session",
    "train_config": "kmat_cli.session",
}

__all__ = [
    "KmatError",
    "Run",
    "RuntimeFailure",
    "UsageError",
    "__version__",
    "evaluate",
    "export",
    "load_prompts",
    "predict",
    "sample_images",
    "train",
    "train_config",
]


def __getattr__(name: str) -> Any:
    """A public name, imported from its home module on first use (PEP 562)."""
    if name not in _HOME:
        raise AttributeError(f"module 'kmat' has no attribute '{name}'")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
