"""``kmat export RUN``: write the run's prompts.safetensors (the learned class embeddings) or, with
``--format onnx``, its low-end classifier as one ONNX model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kmat_cli.commands import _options as options


def command(
    run: options.RunFolder,
    output: Annotated[
        Path | None,
        options.output(
            "Write here instead of RUN/prompts.safetensors (RUN/classifier.onnx with --format onnx)."
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="safetensors: the class embeddings; onnx: image tower + low-end embeddings -> probabilities (needs the onnx extra).",
        ),
    ] = "safetensors",
) -> None:
    """Export a run's class embeddings (hi and lo, K x D) with metadata to a safetensors file, or its
    low-end classifier (preprocessed images in, class probabilities out) to one ONNX model.

    Example: kmat export runs/train/phantom-kmat-s1-1 --output phantom-prompts.safetensors

    Example: kmat export runs/train/phantom-kmat-s1-1 --format onnx
    """
    from kmat_cli import session

    typer.echo(str(session.export(run, output, fmt=fmt)))
