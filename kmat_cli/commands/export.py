"""``kmat export RUN``: write the run's prompts.safetensors (the learned class embeddings)."""

from __future__ import annotations

from pathlib import Path

import typer


def command(
    run: Path = typer.Argument(..., help="A run folder made by `kmat train`."),
    out: Path = typer.Option(None, "--out", "-o", help="Write here instead of RUN/prompts.safetensors."),
) -> None:
    """Export a run's class embeddings (hi and lo, K x D) with metadata to a safetensors file.

    Example: kmat export runs/train/phantom-kmat-s1-1 --out phantom-prompts.safetensors
    """
    from kmat_cli import session

    typer.echo(str(session.export(run, out)))
