"""``kmat env``: versions, device, cache folders and which backbone weights are present."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from kmat_cli.commands import _options as options


def command(
    as_json: Annotated[bool, options.as_json("Print JSON instead of a table.")] = False,
) -> None:
    """Show kmat's environment: versions, device, cache folders, git commit.

    Example: kmat env --json
    """
    from kmat_cli import envinfo

    info = envinfo.collect()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_header=False, show_edge=False)
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        table.add_row(escape(key), escape(str(value)))
    Console().print(table)
