"""Sampling a task's images: the labelled high-end images a run trains on (:func:`few_shot`), and a small
folder of images to try ``kmat predict`` on (:func:`write_samples`)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from kmat_cli.api import Sample, UsageError


def few_shot(samples: Sequence[Sample], class_names: Sequence[str], shots: int, seed: int) -> list[Sample]:
    """``shots`` samples per class drawn without replacement with ``random.Random(seed)``.

    Deterministic for a given seed and split (samples are sorted by path first, so the order a task lists
    them in does not matter). Returned grouped by class, in class order. A class with fewer than ``shots``
    samples is a UsageError (exit code 2) naming the class and how many it has.
    """
    if shots < 1:
        raise UsageError(f"train.shots must be at least 1, got {shots}")
    by_class: list[list[Sample]] = [[] for _ in class_names]
    for s in samples:
        if not 0 <= s.label < len(class_names):
            raise UsageError(f"{s.path}: label {s.label} is outside the task's {len(class_names)} classes")
        by_class[s.label].append(s)
    rng = random.Random(seed)
    out: list[Sample] = []
    for k, pool in enumerate(by_class):
        if not pool:
            raise UsageError(
                f"class '{class_names[k]}' has no high-end training images; check the task's data"
            )
        if len(pool) < shots:
            raise UsageError(
                f"class '{class_names[k]}' has {len(pool)} high-end training images, fewer than "
                f"{shots} shots; pass --shots {len(pool)} or fewer"
            )
        pool = sorted(pool, key=lambda s: str(s.path))
        out.extend(rng.sample(pool, shots))
    return out


def write_samples(
    samples: Sequence[Sample], class_names: Sequence[str], out: str | Path, per_class: int
) -> list[Path]:
    """Copy the first ``per_class`` images of each class (samples sorted by path) into the new folder ``out``
    as ``<nn>-<class>.<ext>``, all at once: the files go into a hidden folder beside ``out`` that is renamed
    to ``out`` at the end, so ``out`` never holds part of them. An ``out`` that exists and is not an empty
    folder is a UsageError (nothing is overwritten). Returns the written files, in class order."""
    import os
    import re
    import shutil
    import tempfile

    if per_class < 1:
        raise UsageError(f"--per-class must be at least 1, got {per_class}")
    out = Path(out)
    if out.is_symlink() or (out.exists() and (not out.is_dir() or any(out.iterdir()))):
        raise UsageError(f"{out}: already exists and is not an empty folder; pass another --out")
    by_class: list[list[Sample]] = [[] for _ in class_names]
    for s in sorted(samples, key=lambda s: str(s.path)):
        if 0 <= s.label < len(class_names) and len(by_class[s.label]) < per_class:
            by_class[s.label].append(s)
    chosen = [s for group in by_class for s in group]
    if not chosen:
        raise UsageError("the split has no images to sample")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        names = []
        for n, s in enumerate(chosen):
            label = re.sub(r"[^A-Za-z0-9._-]+", "_", class_names[s.label])
            names.append(f"{n:02d}-{label}{s.path.suffix.lower()}")
            shutil.copyfile(s.path, staging / names[-1])
        os.chmod(staging, 0o777 & ~_umask())
        if out.is_dir():
            out.rmdir()  # empty (checked above); a file appearing meanwhile makes this fail, not overwrite
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [out / name for name in names]


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
