"""One module per subcommand; each defines ``command``, a thin Typer function (parse, call, render), or
``app``, a Typer sub-app for a command group (``kmat data prepare``). Options several commands share are
declared once, in :mod:`kmat_cli.commands._options`.

Command modules import only light modules at import time (no torch), so ``kmat --help`` stays fast.
Every command is registered here by name; a command module that is missing is an import error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType

import typer

from kmat_cli.commands import benchmark, data, describe, env, evaluate, export, predict, train, tune
from kmat_cli.commands import list as list_

# (subcommand, module) in the order --help lists them.
COMMANDS: list[tuple[str, ModuleType]] = [
    ("train", train),
    ("evaluate", evaluate),
    ("export", export),
    ("predict", predict),
    ("benchmark", benchmark),
    ("tune", tune),
    ("describe", describe),
    ("data", data),
    ("list", list_),
    ("env", env),
]


def load_commands() -> Iterator[tuple[str, Callable | typer.Typer]]:
    """(name, ``command`` function or ``app`` sub-app) of every subcommand, in ``--help`` order."""
    for name, module in COMMANDS:
        yield name, getattr(module, "command", None) or module.app
