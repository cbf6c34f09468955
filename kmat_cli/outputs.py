"""Files a command is told to write (``kmat export -o``, ``kmat predict --output``), checked against the files
they must never replace: those of the run in use.

Files are compared as files (``os.stat`` identity), so a link, a hard link or a ``..`` spelling of a run's
file counts as that file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from kmat_cli.errors import UsageError


def same_file(path: Path, st: os.stat_result) -> bool:
    """Whether ``path`` (followed through links) is the file ``st`` describes; False when it cannot be read."""
    try:
        return os.path.samestat(os.stat(path), st)
    except OSError:
        return False


def check_run_files(
    output: str | os.PathLike[str], run: str | os.PathLike[str], option: str, allowed: Iterable[Path] = ()
) -> None:
    """Refuse (``UsageError``, nothing opened yet) an existing ``output`` that is one of the files of the
    run folder ``run`` (any file in it or below it, compared as files, so a link, a hard link or a ``..``
    spelling counts), except the ``allowed`` ones: writing it would break the run."""
    try:
        mine = os.stat(output)
    except OSError:
        return  # not there yet: it cannot be a file of the run
    if any(same_file(Path(a), mine) for a in allowed):
        return
    for folder, _, names in os.walk(run):
        for name in names:
            if same_file(Path(folder, name), mine):
                raise UsageError(
                    f"{output}: {option} is {Path(folder, name)}, a file of the run in use, which it would "
                    "break; choose another file"
                )
