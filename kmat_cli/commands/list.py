"""``kmat list [kind]``: every registered plugin with its providing distribution and one-line doc."""

from __future__ import annotations

from typing import Annotated

import typer


def command(
    kind: Annotated[
        str | None, typer.Argument(help="backbones, transports, tasks or methods (default: all four).")
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Import every plugin: check that it loads, docs of built-at-import ones.",
        ),
    ] = False,
) -> None:
    """List the registered plugins: name, providing package, one-line description.

    Names and packages come from the entry points, descriptions from the plugins' source files: no plugin
    is imported (fast). --verbose imports each one and reports those that fail to load.

    Example: kmat list transports
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from kmat_cli import registry
    from kmat_cli.errors import KmatError

    kinds = [registry.check_kind(kind)] if kind else list(registry.KINDS)
    console = Console()
    for k in kinds:
        table = Table(title=k, title_justify="left", show_edge=False, header_style="bold")
        table.add_column("name")
        table.add_column("package")
        table.add_column("description")
        for info in registry.infos(k):
            doc = None if verbose else registry.static_summary(k, info.name)
            if doc is None:
                try:
                    doc = escape(registry.summary(registry.get(k, info.name)))
                except KmatError as exc:
                    doc = f"[red]failed to load: {escape(str(exc))}[/red]"
            else:
                doc = escape(doc)
            table.add_row(escape(info.name), escape(info.distribution), doc)
        console.print(table)
