"""``kmat predict`` end to end: check the options, classify the files through the image-file pipeline
(:mod:`kmat_cli.imagefiles`), stream the rows to the output, print the summary.

A file that cannot be read gets a row with its error and the run goes on; rows of finished batches stay
written on a crash, a kill, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from kmat_cli import imagefiles, outputs
from kmat_cli import threads as thread_policy
from kmat_cli.errors import UsageError
from kmat_cli.imagefiles import SplitPreprocess
from kmat_cli.images import Frames, check_frames, load_frames
from kmat_cli.plainpng import read_plain_png
from kmat_cli.predict import destination
from kmat_cli.predict.classifier import Classifier, open_classifier
from kmat_cli.predict.inputs import InMemoryImage, find_inputs
from kmat_cli.predict.onnx import OnnxClassifier
from kmat_cli.predict.output import Row, RowList, RowWriter, check_format
from kmat_cli.progress import bar, say
from kmat_cli.signals import Terminated, terminate_as_interrupt

__all__ = ["FrameReader", "Summary", "check_options", "predict", "run_predict"]

BROKEN_PIPE_EXIT_CODE = 141


def check_options(*, batch_size: int, workers: int | None, frames: str, threads: int | None) -> None:
    """A one-line ``UsageError`` for a batch size under 1, a negative worker count, a thread count under 1
    or frames other than all/first."""
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if workers is not None and workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {workers}")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    check_frames(frames)


class FrameReader:
    """The ``read`` of predict's pipeline: a file's frames (``all`` or the ``first``), preprocessed; a plain
    PNG (:mod:`kmat_cli.plainpng`) without Pillow's per-file work, with the same pixels."""

    def __init__(self, frames: Frames) -> None:
        self.frames = frames

    def __call__(
        self, path: Path | InMemoryImage, preprocess: SplitPreprocess
    ) -> list[tuple[int | None, torch.Tensor]]:
        if isinstance(path, InMemoryImage):
            return [(None, preprocess(path.image))]
        pixels = read_plain_png(path)
        if pixels is not None:
            return [(None, preprocess.from_pixels(pixels))]
        return [(frame, preprocess(img)) for frame, img in load_frames(path, self.frames)]


@dataclass
class Summary:
    """Counts of a predict run: ``ok`` and ``failed`` rows, ``files`` read, folder entries ``skipped``."""

    ok: int = 0
    failed: int = 0
    files: int = 0
    total_files: int = 0
    skipped: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    broken_pipe: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 if any image was classified, else 1; 141 (128 + SIGPIPE, as a shell reports a process ended by
        a closed pipe) when the reader of the output left before the end, e.g. ``kmat predict ... | head``."""
        if self.broken_pipe:
            return BROKEN_PIPE_EXIT_CODE
        return 0 if self.ok else 1

    def text(self) -> str:
        """The summary line, without the ``kmat:`` prefix."""
        rate = self.ok / self.seconds if self.seconds > 0 else 0.0
        head = "interrupted after" if self.interrupted else "done:"
        noun = "entry" if self.skipped == 1 else "entries"
        skipped = f", {self.skipped} other {noun} skipped" if self.skipped else ""
        return (
            f"predict {head} {self.ok} ok, {self.failed} failed ({self.files} of {self.total_files} files"
            f"{skipped}) in {self.seconds:.1f} s, {rate:.1f} images/s"
        )

    def count(
        self, files: Sequence[Path | InMemoryImage], rows: Sequence[tuple[int, int | None, str | None]]
    ) -> int:
        """Count one batch of pipeline rows ``(file index, frame, error)``; returns its number of files."""
        ok = sum(error is None for _, _, error in rows)
        n_files = len({index for index, _, _ in rows})
        self.ok += ok
        self.failed += len(rows) - ok
        self.files += n_files
        self.failures += [(str(files[index]), error) for index, _, error in rows if error is not None]
        return n_files


def predict(
    classifier: Classifier | OnnxClassifier,
    files: Sequence[Path | InMemoryImage],
    writer: RowWriter | RowList,
    *,
    batch_size: int = 64,
    workers: int | None = None,
    frames: Frames = "all",
    progress: bool = False,
    summary: Summary | None = None,
    threads: int | None = None,
) -> Summary:
    """Classify ``files`` and stream their rows to ``writer`` (header included); returns the counts.

    ``batch_size`` files are decoded per batch and at most ``batch_size`` images go through the model at
    once; ``workers`` decoding processes (None: :func:`kmat_cli.threads.decode_workers`). On the CPU,
    torch's threads follow :mod:`kmat_cli.threads` (``threads``: an explicit count). On
    ``KeyboardInterrupt`` (or :class:`~kmat_cli.signals.Terminated`: SIGTERM) the rows of finished batches are
    already written; the summary is marked interrupted and the interrupt re-raised.
    """
    check_options(batch_size=batch_size, workers=workers, frames=frames, threads=threads)
    summary = summary if summary is not None else Summary()
    summary.total_files = len(files)
    device = torch.device(getattr(classifier.backbone, "device", "cpu"))
    if threads is not None or device.type == "cpu":
        thread_policy.apply(threads or 0, reserved=min(workers or 0, len(files)))
    started = time.perf_counter()
    writer.header()
    stream = imagefiles.encoded(
        classifier.backbone, files, FrameReader(frames), batch_size=batch_size, workers=workers
    )
    fields = {"unit": "files", "speed": ""}
    try:
        with bar("predict", len(files), enabled=progress, fields=fields) as advance:
            for rows, feats in stream:
                probs = iter(classifier.classify(feats).tolist() if feats is not None else ())
                writer.write(
                    [
                        Row(files[i], frame, next(probs) if error is None else None, error)
                        for i, frame, error in rows
                    ]
                )
                n_files = summary.count(files, rows)
                rate = summary.ok / max(time.perf_counter() - started, 1e-9)
                advance(n_files, speed=f"{rate:.1f} images/s")
    except (KeyboardInterrupt, Terminated):
        summary.interrupted = True
        raise
    finally:
        stream.close()  # the decoding workers exit now, also on an error or an interrupt
        summary.seconds = time.perf_counter() - started
    return summary


def run_predict(
    paths: Sequence[str | Path],
    *,
    run: str | Path | None = None,
    embeddings: str | Path | None = None,
    onnx: str | Path | None = None,
    modality: str = "lo",
    fmt: str = "csv",
    output: str | Path | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    frames: str = "all",
    device: str = "auto",
    progress: bool | None = None,
    threads: int | None = None,
) -> Summary:
    """What ``kmat predict`` does: find the inputs, load the classifier (``run``, ``embeddings`` or an ONNX
    model ``onnx``: :func:`~kmat_cli.predict.classifier.open_classifier`), stream rows to ``output`` (stdout
    when None), print the summary line to stderr. Bad usage raises ``UsageError`` before any row."""
    check_format(fmt)
    check_options(batch_size=batch_size, workers=workers, frames=frames, threads=threads)
    files, skipped = find_inputs(paths)
    if output is not None:
        output = Path(output)
        destination.check_output(output, paths, files)
    stream = destination.stdout_stream() if output is None else None
    classifier = open_classifier(
        run=run, embeddings=embeddings, onnx=onnx, modality=modality, device=device, threads=threads
    )
    if output is not None:
        destination.check_output(output, paths, (), protected=[classifier.source])
        if run is not None:
            outputs.check_run_files(output, run, "--output")
        stream = destination.open_output(output)
    assert stream is not None  # stdout, or the opened output
    summary = Summary(skipped=skipped)
    try:
        with terminate_as_interrupt():
            predict(
                classifier,
                files,
                RowWriter(stream, classifier.class_names, fmt),
                batch_size=batch_size,
                workers=workers,
                frames=check_frames(frames),
                progress=progress is not False,  # None: when stderr is a terminal
                summary=summary,
                threads=threads,
            )
    except BrokenPipeError:  # `kmat predict ... | head`: the reader left; stop quietly, exit as SIGPIPE would
        if output is None:  # nothing more may reach the closed pipe, not even Python's flush at exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        summary.interrupted = summary.broken_pipe = True
    except OSError as exc:  # e.g. a full disk: one line naming the output file (its rows so far are whole)
        from kmat_cli.atomic import write_error

        summary.interrupted = True
        error = write_error(output if output is not None else "<stdout>", exc)
        if error is None:
            raise
        raise error from exc
    finally:
        if output is not None:
            stream.close()
        say(summary.text())
    return summary
