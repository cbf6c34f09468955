"""kmat for notebooks and scripts: ``import kmat; run = kmat.train(task="phantom", epochs=2)``.

The functions are those of :mod:`kmat_cli.session`, which the ``kmat`` command calls too.
"""

from kmat_cli import __version__
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
