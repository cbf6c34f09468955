"""Output that cannot be written: a read-only output folder (exit 2: the user chose the place) and a full
disk (exit 1: a runtime failure, nothing wrong with the command). Either way one line naming the file, no
temporary or half-written file left, no run folder that looks finished, an older file kept intact."""

from __future__ import annotations

import errno
import os
import re
import resource
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from faults import (
    KMAT,
    Result,
    assert_error,
    assert_no_finished_runs,
    cli,
    custom_task,
    env,
    leftovers,
    png,
    run_folders,
    status,
    train_args,
)

pytestmark = pytest.mark.usefixtures("no_progress")


@pytest.fixture
def task(tmp_path: Path) -> Path:
    return custom_task(tmp_path / "task", per_split={"train": 2, "test": 1})


@pytest.fixture
def run(tmp_path: Path, task: Path) -> Path:
    result = cli(*train_args(task, tmp_path / "runs"))
    assert result.code == 0, result.err
    [folder] = run_folders(tmp_path / "runs")
    return folder


# ------------------------------------------------------------------------------------------------ read-only
@pytest.mark.parametrize("target", ["train-out", "export-out", "predict-output", "cache", "resumed-run"])
def test_read_only_destinations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_only: Any, task: Path, run: Path, target: str
) -> None:
    ro = tmp_path / "ro"
    if target == "train-out":
        read_only(ro)
        result = cli(*train_args(task, ro))
        needles = [ro / "train"]
    elif target == "export-out":
        read_only(ro)
        result = cli("export", run, "--output", ro / "p.safetensors")
        needles = [ro / "p.safetensors", "Permission denied"]
    elif target == "predict-output":
        read_only(ro)
        result = cli("predict", png(tmp_path / "x.png", 1), "--run", run, "--output", ro / "p.csv")
        needles = [ro / "p.csv"]
    elif target == "cache":  # an optimisation only: features computed in memory, the run finishes
        monkeypatch.setenv("KMAT_CACHE", str(read_only(ro)))
        result = cli(*train_args(task, tmp_path / "runs2"))
        assert result.code == 0, result.err
        warnings = [line for line in result.lines if line.startswith("kmat: warning: ")]
        assert any(str(ro) in w and "Permission denied" in w for w in warnings), result.err
        [again] = run_folders(tmp_path / "runs2")
        assert status(again) == "finished"
        assert not leftovers(tmp_path) and not list(ro.iterdir())
        return
    else:  # a killed run whose folder became read-only before --resume
        (run / "run.json").write_text('{"status": "running", "time": 0}')
        read_only(run)
        result = cli("train", "--resume", run, "--no-evaluate")
        needles = [run / "run.json", "Permission denied"]
        assert status(run) == "running"
    assert_error(result, *needles)
    assert not leftovers(tmp_path)
    assert not ro.exists() or not list(ro.iterdir())


@pytest.mark.parametrize("how", ["is-a-file", "below-a-file"])
def test_output_root_that_is_a_file(tmp_path: Path, task: Path, how: str) -> None:
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" if how == "is-a-file" else tmp_path / "file" / "sub"
    assert_error(cli(*train_args(task, out)), out, "Not a directory")
    assert (tmp_path / "file").read_text() == "x"


# ----------------------------------------------------------------------------------------------- full disk
@pytest.fixture
def disk_full(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``disk_full(folder, pattern)``: from the first atomic write of a file matching ``pattern`` under
    ``folder`` on, every write there fails with ENOSPC (raised by fsync, as a full disk reports it)."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to map file descriptors to paths")

    def arm(folder: Path, pattern: str) -> None:
        inside, real, full = str(folder.resolve()), os.fsync, [False]

        def fsync(fd: int) -> None:
            path = os.readlink(f"/proc/self/fd/{fd}")
            dest = re.sub(r"^\.(.*)\.[^.]+\.tmp$", r"\1", os.path.basename(path))
            if path.startswith(inside) and (full[0] or re.fullmatch(pattern, dest)):
                full[0] = True
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
            real(fd)

        monkeypatch.setattr(os, "fsync", fsync)

    return arm


@pytest.mark.parametrize(
    "first",
    [
        r"run\.json",
        r"config\.yaml",
        r"checkpoint-\d+\.safetensors",
        r"checkpoint\.json",
        r"metrics\.jsonl",
        r"prompts\.safetensors",
        r"metrics\.json",
    ],
)
def test_disk_full_during_training(tmp_path: Path, disk_full: Any, task: Path, first: str) -> None:
    out = tmp_path / "full"
    out.mkdir()
    disk_full(out, first)
    args = train_args(task, out)
    if first == r"metrics\.json":
        args = [a for a in args if a != "--no-evaluate"]
    result = cli(*args)
    line = assert_error(result, "No space left on device", "free disk space", code=1, notes=True)
    named = Path(line.removeprefix("kmat: error: ").split(": cannot write")[0])
    assert named.parent.parent.parent == out and re.fullmatch(first, named.name), line
    assert not leftovers(out)
    assert_no_finished_runs(out)
    for folder in run_folders(out):  # a run whose status could not be written says it was running
        assert status(folder) in ("missing", "created", "running", "failed"), status(folder)
    if first == r"run\.json":
        assert not run_folders(out), "an empty run folder was left behind"


def test_disk_full_keeps_the_previous_export(tmp_path: Path, disk_full: Any, run: Path) -> None:
    before = (run / "prompts.safetensors").read_bytes()
    disk_full(run, r"prompts\.safetensors")
    assert_error(cli("export", run), run / "prompts.safetensors", "No space left", code=1)
    assert (run / "prompts.safetensors").read_bytes() == before
    assert not leftovers(run)


def test_disk_full_writing_descriptions(
    tmp_path: Path, disk_full: Any, chat_server: Any, monkeypatch: pytest.MonkeyPatch, task: Path
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", chat_server.key)
    out = tmp_path / "full"
    out.mkdir()
    disk_full(out, r".*\.json")
    result = cli(
        "describe",
        "--task",
        task,
        "-n",
        "3",
        "--base-url",
        chat_server.base_url,
        "--model",
        "m",
        "--no-cache",
        "--output",
        out / "d.json",
    )
    assert_error(result, out / "d.json", "No space left", code=1)
    assert not list(out.iterdir())


def test_file_size_limit_hits_a_real_write(tmp_path: Path, task: Path) -> None:
    """The kernel refuses writes past RLIMIT_FSIZE with EFBIG, in Python's and in safetensors' own writers
    alike: a real write(2) failure, no simulation. The 26 kB checkpoint.json is the first file over 20 kB."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    environ = env(tmp_path / "cache", PYTHONDONTWRITEBYTECODE="1")  # byte code cut at the limit would be
    assert environ["PYTHONDONTWRITEBYTECODE"] == "1"  # a broken .pyc in the shared cache: write none
    args = [*train_args(task, tmp_path / "runs"), "--set", "train.batch_size=1"]
    proc = subprocess.run(
        [KMAT, *args], capture_output=True, text=True, env=environ, preexec_fn=limit, timeout=300
    )
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    line = assert_error(result, "File too large", "free disk space", code=1, notes=True)
    [run] = run_folders(tmp_path / "runs")
    assert str(run / "checkpoint.json") in line
    assert status(run) == "failed"
    assert not leftovers(tmp_path) and not (run / "prompts.safetensors").exists()


def test_disk_full_while_predict_streams_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Path
) -> None:
    """Rows stream to --output batch by batch; when the disk fills mid-batch the torn rows are cut off, so
    the file holds the complete rows of the batches before, and the error names the file."""
    import csv
    import io

    import kmat_cli.predict.destination as destination

    images = [png(tmp_path / "scans" / f"{i}.png", i) for i in range(6)]

    class FullDisk(io.FileIO):
        budget = 0

        def __init__(self, file: Any, mode: str = "r", buffering: int = -1) -> None:
            super().__init__(file, mode)

        def write(self, data: Any) -> int:
            if FullDisk.budget <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            n = min(len(data), FullDisk.budget)
            FullDisk.budget -= n
            return super().write(bytes(data[:n]))

    header_and_two = len(
        "".join(
            cli("predict", *images[:2], "--run", run, "--workers", "0", "--format", "csv").out.splitlines(
                True
            )
        )
    )
    FullDisk.budget = header_and_two + 40  # room for the first batch and part of the second
    monkeypatch.setattr(destination, "open", FullDisk, raising=False)
    out = tmp_path / "p.csv"
    result = cli(
        "predict", tmp_path / "scans", "--run", run, "--workers", "0", "--batch-size", "2", "--output", out
    )
    assert_error(result, out, "No space left on device", code=1, notes=True)
    text = out.read_text()
    rows = list(csv.reader(io.StringIO(text)))
    assert text.endswith("\n") and len(rows) == 3  # the header and the first batch's two rows, whole
    assert all(len(r) == len(rows[0]) for r in rows)
