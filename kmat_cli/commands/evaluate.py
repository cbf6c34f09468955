"""``kmat evaluate RUN``: accuracy and macro-F1 on both test splits, and their harmonic means."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from kmat_cli.commands import _options as options


def command(
    run: options.RunFolder,
    as_json: Annotated[
        bool, options.as_json("Print {run, metrics} as JSON (metrics: metrics.json) instead of the table.")
    ] = False,
) -> None:
    """Evaluate a trained run on the high-end and low-end test splits (table on stdout, metrics.json).

    Example: kmat evaluate runs/train/phantom-kmat-s1-1
    """
    from kmat_cli import session

    metrics = session.evaluate(run, progress=True, show=not as_json)
    if as_json:
        typer.echo(json.dumps({"run": str(run), "metrics": metrics}, indent=2))
