"""kmat for notebooks and scripts: ``import kmat; run = kmat.train(task="phantom", epochs=2)``.

The functions and classes are those of :mod:`kmat_cli.session` (its ``__all__``), which the ``kmat`` command
calls too, and the errors they raise.
"""

from kmat_cli import __version__, session
from kmat_cli.errors import KmatError, RuntimeFailure, UsageError
from kmat_cli.session import *  # noqa: F403 (the names of session.__all__, listed there once)

__all__ = ["KmatError", "RuntimeFailure", "UsageError", "__version__"]
__all__ += session.__all__
