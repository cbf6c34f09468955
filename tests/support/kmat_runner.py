"""``kmat ARGS`` in this process, through the console script's own entry point (:func:`kmat_cli.app.main`:
the same error handling and exit codes), with stdout and stderr captured. The one in-process runner of the
tests: the ``kmat_main`` fixture of tests/conftest.py, or ``from kmat_runner import cli`` at module level."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, NamedTuple


class Result(NamedTuple):
    """Exit code and captured streams of one ``kmat`` invocation (also unpacks as ``code, out, err``)."""

    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """The lines of stderr."""
        return self.err.strip().splitlines()

    @property
    def output(self) -> str:
        """stdout, then stderr."""
        return self.out + self.err


def cli(*args: Any) -> Result:
    """``kmat ARGS`` in this process (arguments may be paths or numbers: they are passed as strings)."""
    from kmat_cli.app import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return Result(int(code or 0), out.getvalue(), err.getvalue())


def interrupted_run(out: Any, monkeypatch: Any, *args: Any) -> tuple[Any, Result]:
    """``kmat train ARGS --out OUT`` of 2 epochs or more stopped by Ctrl-C right after its epoch-1
    checkpoint: (its run folder, the result, exit code 130 checked)."""
    from kmat_cli import train

    real = train.Trainer.save

    def save(self: train.Trainer) -> None:
        real(self)
        if self.epoch == 1:
            raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(train.Trainer, "save", save)
        result = cli("train", *args, "--out", out)
    assert result.code == 130, result.err
    [run] = (Path(out) / "train").iterdir()
    return run, result
