"""`kmat describe --timeout` bounds the whole answer, not each read, and answers have a size limit: a server
that trickles bytes or sends 100 MB fails fast with one line, and nothing of it reaches the request cache."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_llm import describe_args
from kmat_runner import cli

MAX_ANSWER_BYTES = 8 << 20  # the documented limit (kmat_cli.describe.chat.MAX_ANSWER_BYTES)


def _cache_files(root: Path) -> list[Path]:
    return [p for p in (root / "cache" / "describe").rglob("*") if p.is_file()]


def test_a_trickling_server_is_cut_off_after_the_timeout(
    fake_llm: Any, fake_task: str, isolated: Path, capsys: pytest.CaptureFixture
) -> None:
    fake_llm.trickle = 0.5  # one byte every 0.5 s: each read is quick, the answer would take minutes
    args = describe_args(fake_llm, fake_task, "--timeout", "2", "--max-retries", "0", "--classes", "nevus")
    code, _out, err = cli(*args, "--modalities", "hi", "--output", str(isolated / "d.json"))
    seconds = time.monotonic() - fake_llm.requests[0]["time"]  # from the request, not counting start-up
    assert code == 1, err
    assert 1.9 < seconds < 4.0, f"{seconds:.1f} s"
    [line] = err.strip().splitlines()
    assert line.startswith("kmat: error: ") and "no answer within 2 s after 1 tries" in line
    assert not (isolated / "d.json").exists() and not _cache_files(isolated)


@contextlib.contextmanager
def _header_trickler() -> Iterator[tuple[str, list[float]]]:
    """A raw HTTP server that reads the request, then sends its status line and headers one byte per
    second, forever; yields its base URL and the list of times it received a request."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    received: list[float] = []

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.recv(65536)
                received.append(time.monotonic())
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: " + b"a" * 10_000
                for byte in head:
                    if stop.wait(1.0):
                        return
                    conn.sendall(bytes([byte]))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1", received
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_a_server_trickling_its_headers_is_cut_off_after_the_timeout(fake_task: str, isolated: Path) -> None:
    """The deadline covers the whole exchange: headers arriving one byte per second never end it. (A real
    ``kmat`` process, so that a hang fails the test instead of hanging it.)"""
    kmat_exe = str(Path(sys.executable).with_name("kmat"))
    with _header_trickler() as (base_url, received):
        args = ["describe", "--task", fake_task, "--base-url", base_url, "--model", "m", "-n", "5"]
        args += ["--timeout", "3", "--max-retries", "0", "--classes", "nevus", "--modalities", "hi"]
        proc = subprocess.run([kmat_exe, *args], capture_output=True, text=True, timeout=60)
        seconds = time.monotonic() - received[0]  # from the request, not counting start-up
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("kmat: error: ") and "no answer within 3 s after 1 tries" in line, proc.stderr
    assert 2.9 < seconds < 3 + 1.5, f"{seconds:.1f} s"
    assert not _cache_files(isolated)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_a_huge_answer_fails_fast_and_is_never_cached(
    fake_llm: Any, fake_task: str, isolated: Path, capsys: pytest.CaptureFixture, declared: bool
) -> None:
    fake_llm.padding, fake_llm.declare_length = 100 << 20, declared  # a valid JSON answer + 100 MB of spaces
    args = describe_args(fake_llm, fake_task, "--max-retries", "3", "--classes", "nevus")
    start = time.monotonic()
    code, _out, err = cli(*args, "--modalities", "hi", "--output", str(isolated / "d.json"))
    assert code == 2, err
    assert time.monotonic() - start < 5
    [line] = err.strip().splitlines()
    assert line.startswith("kmat: error: ") and f"larger than {MAX_ANSWER_BYTES >> 20} MiB" in line
    assert len(fake_llm.requests) == 1  # not retried
    assert not (isolated / "d.json").exists() and not _cache_files(isolated)


def test_answers_within_the_limits_still_pass(
    fake_llm: Any, fake_task: str, isolated: Path, capsys: pytest.CaptureFixture
) -> None:
    fake_llm.padding = MAX_ANSWER_BYTES - 4096  # the JSON answer itself is well under 4 KB
    args = describe_args(fake_llm, fake_task, "--classes", "nevus", "--modalities", "hi")
    code, _, err = cli(*args, "--output", str(isolated / "d.json"))
    assert code == 0, err
    assert (isolated / "d.json").is_file() and len(_cache_files(isolated)) == len(fake_llm.requests)
