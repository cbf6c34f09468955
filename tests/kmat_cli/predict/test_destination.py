"""Where predict's rows go: ``--output`` to a FIFO or through a link, never over an input or a file another
``kmat predict`` holds, never into a closed stdout."""

from __future__ import annotations

import csv
import io
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from faults import KMAT, assert_error, cli, csv_rows, env, fifo_reader, png

pytestmark = pytest.mark.usefixtures("no_progress")


# ------------------------------------------------------------------ special destinations
def test_predict_output_to_a_fifo_and_a_link(tmp_path: Path, prompts: Path) -> None:
    """--output naming a FIFO streams the rows into it; one naming a link writes the link's target."""
    image = png(tmp_path / "x.png", 1)
    fifo = tmp_path / "rows.fifo"
    with fifo_reader(fifo) as got:
        result = cli("predict", image, "--embeddings", prompts, "--workers", "0", "-o", fifo)
    assert result.code == 0, result.err
    rows = list(csv.reader(io.StringIO(got[0].decode())))
    assert len(rows) == 2 and rows[1][0] == str(image) and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    target, link = tmp_path / "target.csv", tmp_path / "link.csv"
    link.symlink_to(target)
    result = cli("predict", image, "--embeddings", prompts, "--workers", "0", "-o", link)
    assert result.code == 0 and link.is_symlink() and len(list(csv.reader(target.open()))) == 2


# ------------------------------------------------------------------------------------ output vs. the inputs
@pytest.mark.parametrize(
    "where", ["input-in-folder", "input-by-name", "hard-link-to-input", "new-image-name-in-folder", "prompts"]
)
def test_output_that_would_clobber_an_input_is_refused(tmp_path: Path, prompts: Path, where: str) -> None:
    """Refused with exit 2 before anything is opened: the input's bytes are untouched."""
    scans = tmp_path / "scans"
    a, b = png(scans / "a.png", 1), png(scans / "b.png", 2)
    before = {p: p.read_bytes() for p in (a, b, prompts)}
    args: list[Any] = [scans]
    output = {
        "input-in-folder": b,
        "new-image-name-in-folder": scans / "sub" / "rows.png",
        "prompts": prompts,
    }
    if where == "input-by-name":
        (tmp_path / "elsewhere").mkdir()
        args, out = [a, tmp_path / "elsewhere" / ".." / "scans" / "b.png", b], b
    elif where == "hard-link-to-input":
        out = tmp_path / "alias.csv"
        os.link(b, out)
    else:
        out = output[where]
    result = cli("predict", *args, "--embeddings", prompts, "--workers", "0", "--output", out)
    assert_error(result, "--output")
    assert {p: p.read_bytes() for p in (a, b, prompts)} == before
    assert not (scans / "sub").exists()


def test_output_in_the_input_folder_with_another_suffix_is_fine(tmp_path: Path, prompts: Path) -> None:
    scans = tmp_path / "scans"
    png(scans / "a.png", 1)
    result = cli("predict", scans, "--embeddings", prompts, "--workers", "0", "--output", scans / "rows.csv")
    assert result.code == 0 and len((scans / "rows.csv").read_text().splitlines()) == 2


# ------------------------------------------------------------------------------------ concurrent outputs
def test_an_output_locked_by_another_predict_is_refused_untouched(tmp_path: Path, prompts: Path) -> None:
    """While another ``kmat predict`` holds the output (its lock), a second one exits 2 before emptying
    or writing it: the first one's rows stay whole, never interleaved or NUL-filled."""
    import fcntl

    out = tmp_path / "rows.csv"
    out.write_bytes(b"path,frame,label\nfirst run's rows\n")
    with open(out, "ab") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        result = cli(
            "predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--workers", "0", "-o", out
        )
        assert_error(result, out, "another kmat predict")
        assert out.read_bytes() == b"path,frame,label\nfirst run's rows\n"
    result = cli("predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--workers", "0", "-o", out)
    assert result.code == 0 and len(csv_rows(out.read_bytes())) == 2  # the lock went with its holder


# ----------------------------------------------------------------------------------------------- stdout
def test_closed_stdout_is_bad_usage(tmp_path: Path, prompts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``kmat predict ... >&-`` (Python's sys.stdout is None then): exit 2, one line, before the model loads."""
    from contextlib import redirect_stderr

    from kmat_cli.app import main

    err = io.StringIO()
    monkeypatch.setattr(sys, "stdout", None)
    with redirect_stderr(err):
        code = main(
            ["predict", str(png(tmp_path / "x.png", 1)), "--embeddings", str(prompts), "--workers", "0"]
        )
    assert code == 2
    assert err.getvalue().strip().splitlines() == [
        "kmat: error: stdout is closed; give --output FILE for the rows"
    ]


@pytest.mark.slow
def test_two_predicts_with_the_same_output_leave_one_complete_file(tmp_path: Path, prompts: Path) -> None:
    """A second ``kmat predict`` (other inputs) with the same output while the first is writing it (held
    with SIGSTOP to make the overlap certain): the second exits 2 (the file is locked) without emptying it,
    and the file ends as the first run's complete rows in order, no NUL byte. (The second run used to empty
    the file and write its rows; the first then wrote on at its old offset, leaving a hole of NULs.)"""
    src = png(tmp_path / "src.png", 0, size=256)
    first_scans, second_scans = tmp_path / "first", tmp_path / "second"
    first_scans.mkdir()
    for i in range(300):
        (first_scans / f"{i:03d}.png").symlink_to(src)
    png(second_scans / "x.png", 1)
    out = tmp_path / "rows.csv"

    def start(scans: Path) -> subprocess.Popen:
        cmd = [
            KMAT,
            "predict",
            scans,
            "--embeddings",
            prompts,
            "--workers",
            "1",
            "--batch-size",
            "1",
            "-o",
            out,
        ]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())

    first = start(first_scans)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (out.exists() and out.read_bytes().count(b"\n") >= 20):
            time.sleep(0.02)
        first.send_signal(signal.SIGSTOP)
        second = start(second_scans)
        second_code = second.wait(timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    first_code = first.wait(timeout=600)
    errors = [p.stderr.read().decode() for p in (first, second)]  # type: ignore[union-attr]
    assert (first_code, second_code) == (0, 2), errors
    assert "another kmat predict" in errors[1]
    data = out.read_bytes()
    rows = csv_rows(data)
    assert b"\0" not in data and len(rows) == 301 and all(len(r) == len(rows[0]) for r in rows)
    assert [r[0] for r in rows[1:]] == [str(first_scans / f"{i:03d}.png") for i in range(300)]
