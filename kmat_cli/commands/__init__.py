"""One module per subcommand; each defines ``command``, a thin Typer function (parse, call, render).

Command modules import only light modules at import time (no torch), so ``kmat --help`` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

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


def load_commands() -> Iterator[tuple[str, Callable]]:
    for name, module_name in COMMANDS:
        if importlib.util.find_spec(module_name) is None:
            continue
        yield name, importlib.import_module(module_name).command
