"""Tools of the reliability suite: run ``kmat`` (in-process or as the real console script), check its one-line
errors, build tiny custom tasks, compare run folders.

In-process runs are :func:`kmat_runner.cli` (re-exported here); subprocess runs use the installed ``kmat`` script.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from kmat_runner import Result, cli  # noqa: F401  (re-exported)
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
KMAT = str(Path(sys.executable).with_name("kmat"))
KILLPOINT = str(HERE / "killpoint.py")
# A short phantom run: 2 shots x 8 classes, one thread (the phantom task's own recommendation).
PHANTOM = ["--task", "phantom", "--shots", "2", "--set", "train.threads=1"]
# A short phantom run: 2 shots x 8 classes, one thread, 2 epochs, no evaluation.
SHORT = [*PHANTOM, "--epochs", "2", "--no-evaluate"]
# The default classes of :func:`custom_task` and :func:`two_class_prompts`.
CLASSES = ["smooth nodule", "spiculated mass"]


def session_cache() -> Path:
    """The test session's kmat cache (tests/conftest.py sets KMAT_CACHE): the phantom world lives there."""
    return Path(os.environ["KMAT_CACHE"])


def phantom_root() -> str:
    """``task.root`` of the session's phantom world, so runs with a fresh KMAT_CACHE need not redraw it."""
    return str(session_cache() / "phantom")


def env(cache: Path | None = None, **extra: str) -> dict[str, str]:
    """A subprocess environment: one CPU thread, no progress bars, ``cache`` as KMAT_CACHE (default: the
    session's), bytecode kept in the session cache even where PYTHONDONTWRITEBYTECODE is set."""
    out = {**os.environ, "KMAT_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    out["KMAT_CACHE"] = str(cache) if cache is not None else str(session_cache())
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), out.get("PYTHONPATH", "")) if p)
    if out.pop("PYTHONDONTWRITEBYTECODE", None) and "PYTHONPYCACHEPREFIX" not in out:
        out["PYTHONPYCACHEPREFIX"] = str(session_cache() / "pycache")
    out.update(extra)  # e.g. PYTHONDONTWRITEBYTECODE=1: read the shared byte code, write none
    return out


def kmat(*args: Any, environ: dict[str, str] | None = None, timeout: float = 300) -> Result:
    """``kmat ARGS`` as the installed console script in a subprocess."""
    proc = subprocess.run(
        [KMAT, *map(str, args)], capture_output=True, text=True, env=environ or env(), timeout=timeout
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_error(result: Result, *needles: Any, code: int = 2, notes: bool = False) -> str:
    """The run failed with exit ``code`` and exactly one stderr line, ``kmat: error: ...``, containing every
    needle (file names, keys). ``notes``: a failure after the run folder was made may be preceded by kmat's
    own ``kmat: <note>`` lines (e.g. ``kmat: run folder ...``, saying where the failed run is). Returns the
    error line."""
    assert result.code == code, f"exit {result.code}, wanted {code}; stderr: {result.err!r}"
    lines = result.lines
    if notes:
        lines = [line for line in lines if line.strip()]
        assert all(line.startswith("kmat: ") for line in lines), result.err
        lines = [line for line in lines if line.startswith("kmat: error: ")]
    assert len(lines) == 1, f"stderr is {len(lines)} lines, wanted one: {result.err!r}"
    line = lines[0]
    assert line.startswith("kmat: error: "), line
    assert "Traceback" not in result.err
    for needle in needles:
        assert str(needle) in line, f"{needle!r} not named in: {line}"
    return line


# -------------------------------------------------------------------------------------------- tiny data
def png(path: Path, seed: int, size: int = 16) -> Path:
    """A small random RGB PNG (content depends on ``seed``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, format="PNG")
    return path


def prompts_file(
    dest: Path, classes: list[str], meta: dict | None = None, tensors: dict | None = None
) -> Path:
    """A valid prompts.safetensors at ``dest`` for the phantom backbone and ``classes``, with metadata keys
    overridden by ``meta`` (None: left out) and tensors added or replaced by ``tensors``."""
    import torch
    from safetensors.torch import save_file

    from kmat_cli.registry import get

    backbone = get("backbones", "phantom")(vision_only=True)
    g = torch.Generator().manual_seed(0)
    emb = {
        f"text_embeddings.{m}": torch.nn.functional.normalize(
            torch.randn(len(classes), backbone.embed_dim, generator=g), dim=-1
        )
        for m in ("hi", "lo")
    }
    metadata = {
        "kmat.format": "kmat.prompts/v1",
        "kmat.class_names": json.dumps(classes),
        "kmat.backbone": backbone.id,
        "kmat.embed_dim": str(backbone.embed_dim),
        "kmat.logit_scale": "20.0",
        "kmat.preprocess": json.dumps(backbone.preprocess_spec, sort_keys=True),
        "kmat.backbone_config": json.dumps({"name": "phantom"}),
        **(meta or {}),
    }
    save_file(
        {**emb, **(tensors or {})}, str(dest), metadata={k: v for k, v in metadata.items() if v is not None}
    )
    return dest


def two_class_prompts(folder: Path, meta: dict | None = None, tensors: dict | None = None) -> Path:
    """A new prompts file in ``folder`` (``prompts-<n>.safetensors``) for the phantom backbone and
    :data:`CLASSES`, with metadata and tensors overridden as in :func:`prompts_file`."""
    path = folder / f"prompts-{len(list(folder.glob('prompts-*')))}.safetensors"
    return prompts_file(path, CLASSES, meta, tensors)


def csv_rows(data: bytes) -> list[list[str]]:
    """The records of a CSV file's bytes, decoded as strict UTF-8 (a record may hold line breaks)."""
    import csv
    import io

    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def csv_records(text: str) -> list[dict[str, str]]:
    """The rows of a CSV text (a header line, then records) as dicts by column name."""
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text)))


def image_tree(root: Path, classes: list[str], per_split: dict[str, int], seed: int = 0) -> Path:
    """An ImageFolder tree ``root/<split>/<class>/<i>.png`` with ``per_split[split]`` images per class."""
    n = seed * 10_000
    for split, count in per_split.items():
        for name in classes:
            for i in range(count):
                n += 1
                png(root / split / name / f"{i}.png", n)
    root.mkdir(parents=True, exist_ok=True)
    return root


def custom_task(
    folder: Path,
    classes: list[str] | None = None,
    per_split: dict[str, int] | None = None,
    **spec: Any,
) -> Path:
    """A custom task YAML in ``folder`` over ImageFolder trees ``hi/`` and ``lo/`` (made unless ``spec``
    gives its own ``data``); ``spec`` keys override the YAML's. Returns the YAML path."""
    classes = classes or CLASSES
    per_split = per_split or {"train": 3, "val": 1, "test": 2}
    if "data" not in spec:
        image_tree(folder / "hi", classes, per_split, seed=1)
        image_tree(folder / "lo", classes, per_split, seed=2)
    doc = {
        "name": "faulty",
        "class_names": classes,
        "modalities": {"hi": "colour photograph", "lo": "grey scan"},
        "data": {"hi": "hi", "lo": "lo"},
        "config": {"backbone": {"name": "phantom"}},  # offline: task files default to biomedclip
        **spec,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def train_args(task: Path | str, out: Path, *extra: Any) -> list[str]:
    """``train`` arguments of a short run of ``task`` (2 epochs, 2 shots, one thread, no evaluation)."""
    return [
        "train",
        "--task",
        str(task),
        "--shots",
        "2",
        "--epochs",
        "2",
        "--set",
        "train.threads=1",
        "--no-evaluate",
        "--out",
        str(out),
        *map(str, extra),
    ]


# ---------------------------------------------------------------------------------------------- run folders
def run_folders(out: Path) -> list[Path]:
    """The run folders under an output root (any command), sorted."""
    return sorted(p for p in out.glob("*/*") if p.is_dir())


def status(run: Path) -> str:
    """What a run folder's run.json says (``missing``/``unreadable`` when it cannot say)."""
    try:
        return str(json.loads((run / "run.json").read_text(encoding="utf-8")).get("status"))
    except FileNotFoundError:
        return "missing"
    except (ValueError, UnicodeDecodeError):
        return "unreadable"


def leftovers(folder: Path) -> list[Path]:
    """Temporary files of interrupted atomic writes (``.<name>.<random>.tmp``) anywhere under ``folder``."""
    return sorted(p for p in folder.rglob(".*.tmp"))


def assert_no_runs(out: Path) -> None:
    """No run folder under ``out`` (a command refused before its run started must leave none)."""
    assert not run_folders(out), f"a failed command left run folders: {run_folders(out)}"


def assert_no_finished_runs(out: Path) -> None:
    """No run folder under ``out`` says it is finished (a failed command must leave none looking done)."""
    done = [p for p in run_folders(out) if status(p) == "finished"]
    assert not done, f"run folders look finished after a failure: {done}"


def tensors_equal(a: Path, b: Path) -> dict[str, float]:
    """Tensors of two safetensors files that differ ({name: max abs difference}; missing names: inf)."""
    import torch
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    diff = {k: float("inf") for k in set(ta) ^ set(tb)}
    for k in set(ta) & set(tb):
        if ta[k].shape != tb[k].shape:
            diff[k] = float("inf")
        elif not torch.equal(ta[k], tb[k]):
            diff[k] = float((ta[k].double() - tb[k].double()).abs().max())
    return diff


def pickle_bomb(dest: Path, marker: Path) -> Path:
    """A ``torch.save`` file (a pickle inside a zip) whose unpickling would create ``marker``: reading it
    with pickle executes code; kmat must refuse it without ever unpickling."""
    import torch

    class Payload:
        def __reduce__(self) -> tuple[Any, tuple[str, str]]:
            return (open, (str(marker), "w"))

    torch.save({"method.ctx": Payload(), "features": Payload()}, str(dest))
    return dest


@contextlib.contextmanager
def fifo_reader(path: Path) -> Iterator[list[bytes]]:
    """A FIFO at ``path`` and a thread reading it to the end; the bytes are in the yielded list after."""
    os.mkfifo(path)
    got: list[bytes] = []

    def read() -> None:
        with open(path, "rb") as handle:
            got.append(handle.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield got
    finally:
        reader.join(timeout=10)
        if reader.is_alive():  # the writer never opened it: unblock the reader
            with open(path, "wb"):
                pass
            reader.join(timeout=5)
