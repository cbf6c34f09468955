"""Messages and progress on stderr, one policy for every command.

- :func:`say` / :func:`warn`: one line ``kmat: <message>`` / ``kmat: warning: <message>`` on stderr, shown
  literally (no markup, control characters escaped), flushed at once.
- :func:`bar`: a transient rich progress bar on a terminal. Off a terminal (nohup, SLURM, CI logs) it
  prints the lines its ``log`` callback returns, or nothing. ``KMAT_NO_PROGRESS`` (any non-empty value)
  or ``enabled=False`` turns bars and log lines off.
- :func:`rows`: several such bars at once, one per label (terminal only).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from kmat_cli.errors import printable

__all__ = ["Advance", "bar", "console", "draws_bars", "rows", "say", "warn"]

Advance = Callable[..., None]  # advance(n=1, **fields)


def say(message: str) -> None:
    """``kmat: <message>`` on stderr, control characters escaped (:func:`kmat_cli.errors.printable`)."""
    print(f"kmat: {printable(message)}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    """``kmat: warning: <message>`` on stderr."""
    say(f"warning: {message}")


def console() -> Any:
    """A rich console on stderr (rich is imported only when progress is shown)."""
    from rich.console import Console

    return Console(stderr=True)


def draws_bars(enabled: bool = True, err: Any = None) -> bool:
    """Whether a bar is drawn: asked for, not switched off by ``KMAT_NO_PROGRESS``, stderr a terminal."""
    if not enabled or os.environ.get("KMAT_NO_PROGRESS"):
        return False
    return bool((err or console()).is_terminal)


@contextlib.contextmanager
def bar(
    label: str,
    total: int,
    *,
    enabled: bool = True,
    completed: int = 0,
    fields: Mapping[str, str] | None = None,
    log: Callable[[Mapping[str, Any], float], str | None] | None = None,
) -> Iterator[Advance]:
    """Yield ``advance(n=1, **fields)``.

    On a terminal: a transient bar ``label [bar] M/N <fields...> elapsed remaining``; ``fields`` names the
    text fields (with their initial values) shown after the count. Off a terminal: ``log(fields, elapsed_s)``
    per call, its non-empty result printed as one line. Disabled: a no-op.
    """
    if not enabled or os.environ.get("KMAT_NO_PROGRESS") or total <= 0:
        yield lambda n=1, **_: None
        return
    err = console()
    if not err.is_terminal:
        started = time.perf_counter()

        def line(n: int = 1, **values: Any) -> None:
            text = log(values, time.perf_counter() - started) if log else None
            if text:
                print(text, file=sys.stderr, flush=True)

        yield line
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    names: dict[str, Any] = dict(fields or {})
    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    columns += [TextColumn(f"{{task.fields[{name}]}}") for name in names]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(label, total=total, completed=completed, **names)
        yield lambda n=1, **values: progress.update(
            task, advance=n, **{k: v for k, v in values.items() if k in names}
        )


def _no_row(label: str, n: int = 1) -> None:
    """``advance`` where no bar is drawn: nothing."""


@contextlib.contextmanager
def rows(labels: Sequence[str], total: int, *, enabled: bool = True) -> Iterator[Callable[[str, int], None]]:
    """Yield ``advance(label, n)``: one transient bar per label (shown literally), each out of ``total``.

    Drawn on a terminal only, under the policy of :func:`bar` (``enabled``, ``KMAT_NO_PROGRESS``);
    elsewhere ``advance`` does nothing. ``advance`` may be called from several threads.
    """
    if not draws_bars(enabled) or total <= 0:
        yield _no_row
        return
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console(), transient=True) as progress:
        ids = {label: progress.add_task(escape(label), total=total) for label in labels}

        def advance(label: str, n: int = 1) -> None:
            progress.advance(ids[label], n)

        yield advance
