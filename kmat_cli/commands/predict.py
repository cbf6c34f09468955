"""``kmat predict PATH...``: classify image files and folders with exported prompts; a table out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kmat_cli.commands import _options as options


def command(
    paths: Annotated[list[Path], typer.Argument(help="Image files and folders (walked recursively).")],
    run: Annotated[
        Path | None,
        typer.Option(
            "--run",
            help="A finished run folder made by `kmat train` (its prompts). Default: the run that finished "
            "last under ./runs/train, else ./prompts.safetensors.",
        ),
    ] = None,
    embeddings: Annotated[
        Path | None,
        typer.Option(
            "--embeddings",
            "-e",
            help="A prompts.safetensors (from a run or `kmat export`), or a run folder.",
        ),
    ] = None,
    onnx: Annotated[
        Path | None,
        typer.Option(
            "--onnx", help="A classifier.onnx made by `kmat export --format onnx` (runs on onnxruntime)."
        ),
    ] = None,
    modality: Annotated[str, typer.Option("--modality", help="Which class embeddings: lo or hi.")] = "lo",
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output format: csv or jsonl.")] = "csv",
    output: Annotated[Path | None, options.output("Write rows here (default: stdout).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per model batch.")] = 64,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-w",
            help="Decoding processes (default: on a GPU cores - 1, 1 to 8; on the CPU the cores torch leaves free; 0: none).",
        ),
    ] = None,
    frames: Annotated[
        str, typer.Option("--frames", help="Multi-frame DICOM: all (a row each) or first.")
    ] = "all",
    device: Annotated[str, options.device()] = "auto",
    threads: Annotated[
        int | None,
        options.threads(
            "torch CPU threads (default: $OMP_NUM_THREADS, else the cores not busy with other processes)."
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(
            "--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal)."
        ),
    ] = None,
) -> None:
    """Classify images (PNG, JPEG, BMP, TIFF, WebP, DICOM) with a run's exported class embeddings.

    One row per image (per frame of a multi-frame DICOM): path, frame, label, a probability per class, error.

    A file that cannot be read gets its error on its row and the run goes on.

    Exit code 0 if any image was classified, 1 if none was, 2 for bad usage, 130 on Ctrl-C, 143 on
    SIGTERM (both keep the rows so far), 141 when the reader of stdout left early (`| head`).

    Example: kmat predict scans/ --run runs/train/phantom-kmat-s1-1 --output predictions.csv

    Example: kmat predict scans/ --onnx runs/train/phantom-kmat-s1-1/classifier.onnx

    Sample images to try it on: kmat data sample --out scans/
    """
    from kmat_cli.predict import run_predict

    summary = run_predict(
        paths,
        run=run,
        embeddings=embeddings,
        onnx=onnx,
        modality=modality,
        fmt=fmt,
        output=output,
        batch_size=batch_size,
        workers=workers,
        frames=frames,
        device=device,
        progress=progress,
        threads=threads,
    )
    if summary.exit_code:
        raise typer.Exit(summary.exit_code)
