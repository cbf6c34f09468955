"""One module per subcommand; each defines ``command``, a thin Typer function (parse, call, render), or
``app``, a Typer sub-app for a command group (``kmat data prepare``).

Command modules import only light modules at import time (no torch), so ``kmat --help`` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

import typer

# (subcommand, module) in the order --help lists them. Modules that do not exist yet are skipped.
COMMANDS = [
    ("train", "kmat_cli.commands.train"),
    ("evaluate", "kmat_cli.commands.evaluate"),
    ("export", "kmat_cli.commands.export"),
    ("predict", "kmat_cli.commands.predict"),
    ("benchmark", "kmat_cli.commands.benchmark"),
    ("tune", "kmat_cli.commands.tune"),
    ("describe", "kmat_cli.commands.describe"),
    ("data", "kmat_cli.commands.data"),
    ("list", "kmat_cli.commands.list"),
    ("env", "kmat_cli.commands.env"),
]


def load_commands() -> Iterator[tuple[str, Callable | typer.Typer]]:
    """(name, ``command`` function or ``app`` sub-app) of every subcommand module present."""
    for name, module_name in COMMANDS:
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        yield name, getattr(module, "command", None) or module.app
