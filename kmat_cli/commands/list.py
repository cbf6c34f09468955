"""``kmat list [kind]``: every registered plugin with its providing distribution and one-line doc."""

from __future__ import annotations

import typer


def command(
    kind: str = typer.Argument(None, help="backbones, transports, tasks or methods (default: all four)."),
) -> None:
    """List the registered plugins: name, providing package, one-line description.

    Example: kmat list transports
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from kmat_cli import registry
    from kmat_cli.errors import KmatError

    kinds = [registry._check_kind(kind)] if kind else list(registry.KINDS)
    console = Console()
    for k in kinds:
        table = Table(title=k, title_justify="left", show_edge=False, header_style="bold")
        table.add_column("name")
        table.add_column("package")
        table.add_column("description")
        for info in registry.infos(k):
            try:
                doc = escape(registry.summary(registry.get(k, info.name)))
            except KmatError as exc:
                doc = f"[red]failed to load: {escape(str(exc))}[/red]"
            table.add_row(escape(info.name), escape(info.distribution), doc)
        console.print(table)
