"""Run ``kmat ARGS`` and SIGKILL the process at one planted point, or make it meet others at one
(tools of the reliability tests).

    python killpoint.py POINT ARGS...

POINT is one of
  ``replace:<glob>:<n>:<when>``  at the n-th ``os.replace`` onto a file whose name matches ``glob`` (the
                                 last step of every atomic write), ``when`` is
                                 ``before``: the temporary file is complete and synced, not yet renamed;
                                 ``torn``: the temporary file cut to half its bytes (a kill mid-write);
                                 ``after``: just renamed, before the writer returns;
  ``unlink:<glob>:<n>``          before the n-th deletion of a matching file (old checkpoint tensors);
  ``step:<n>``                   before the n-th training step;
  ``meet:<folder>:<n>``          no kill: before computing missing image features, wait until ``n``
                                 processes have arrived (each leaves a file in ``folder``), so that they
                                 all compute and write the same features at the same time.
The process kills itself with SIGKILL: no handler, ``finally`` or atexit runs, exactly as ``kill -9``.
A point never reached lets the command finish normally (the caller checks that it was killed).
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys
from pathlib import Path
from typing import Any


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _Counter:
    def __init__(self, pattern: str, n: int) -> None:
        self.pattern, self.n, self.seen = pattern, n, 0

    def hit(self, path: Any) -> bool:
        """True on the n-th call for a file whose name matches the pattern."""
        if not fnmatch.fnmatch(Path(path).name, self.pattern):
            return False
        self.seen += 1
        return self.seen == self.n


def _plant_replace(rest: str) -> None:
    pattern, n, when = rest.rsplit(":", 2)
    counter, real = _Counter(pattern, int(n)), os.replace

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        if not counter.hit(dst):
            return real(src, dst, *args, **kwargs)
        if when == "torn":
            data = Path(src).read_bytes()
            Path(src).write_bytes(data[: len(data) // 2])
        if when == "after":
            real(src, dst, *args, **kwargs)
        _die()
        return None

    os.replace = replace


def _plant_unlink(rest: str) -> None:
    pattern, n = rest.rsplit(":", 1)
    counter, real_unlink = _Counter(pattern, int(n)), Path.unlink

    def unlink(self: Path, *args: Any, **kwargs: Any) -> None:
        if counter.hit(self):
            _die()
        real_unlink(self, *args, **kwargs)

    Path.unlink = unlink  # type: ignore[method-assign]


def _plant_step(rest: str) -> None:
    from kmat_cli import train

    target, real_step, seen = int(rest), train.Trainer.step, [0]

    def step(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen[0] += 1
        if seen[0] == target:
            _die()
        return real_step(self, *args, **kwargs)

    train.Trainer.step = step  # type: ignore[method-assign]


def _plant_meet(rest: str) -> None:
    import time

    from kmat_cli import features

    folder, n = rest.rsplit(":", 1)
    real_compute = features._compute

    def compute(*args: Any, **kwargs: Any) -> Any:
        Path(folder, str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(list(Path(folder).iterdir())) < int(n) and time.monotonic() < deadline:
            time.sleep(0.01)
        return real_compute(*args, **kwargs)

    features._compute = compute


PLANTS = {"replace": _plant_replace, "unlink": _plant_unlink, "step": _plant_step, "meet": _plant_meet}


def plant(point: str) -> None:
    """Install the kill described by ``point`` (see the module docstring)."""
    kind, _, rest = point.partition(":")
    if kind not in PLANTS:
        raise SystemExit(f"killpoint: unknown point {point!r}")
    PLANTS[kind](rest)


if __name__ == "__main__":
    plant(sys.argv[1])
    from kmat_cli.app import main

    sys.exit(main(sys.argv[2:]))
