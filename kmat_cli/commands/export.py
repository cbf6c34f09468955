"""``kmat export RUN``: write the run's prompts.safetensors (the learned class embeddings)."""

from __future__ import annotations

from pathlib import Path

import typer

from kmat_cli.commands import _options as options


def command(
    run: Path = options.run_folder(),
    output: Path = options.output("Write here instead of RUN/prompts.safetensors."),
) -> None:
    """Export a run's class embeddings (hi and lo, K x D) with metadata to a safetensors file.

    Example: kmat export runs/train/phantom-kmat-s1-1 --output phantom-prompts.safetensors
    """
    from kmat_cli import session

    typer.echo(str(session.export(run, output)))
