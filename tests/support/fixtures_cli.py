"""Fixtures of the command-line tests: no progress bars, an isolated feature cache where a test writes one,
a local OpenAI-compatible chat server, a read-only folder (real permissions, or simulated as root), a task and
a run whose names are rich markup, and a terminal wide enough for whole paths."""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import tempfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from fake_llm import serving
from faults import cli, custom_task, png, run_folders, train_args


@pytest.fixture
def no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """No progress bars (KMAT_NO_PROGRESS=1): the reliability tests read stderr line by line."""
    monkeypatch.setenv("KMAT_NO_PROGRESS", "1")


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty KMAT_CACHE for this test (the phantom world stays where the session drew it)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("KMAT_CACHE", str(cache))
    return cache


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Path]:
    """(task file, finished run folder) of a two-epoch run of a tiny custom task, this test's own to damage."""
    task = custom_task(tmp_path / "task", per_split={"train": 2, "test": 1})
    result = cli(*train_args(task, tmp_path / "runs"))
    assert result.code == 0, result.err
    [run] = run_folders(tmp_path / "runs")
    return task, run


BRACKETED = ["nevus [benign]", "[/]"]


@pytest.fixture(scope="session")
def bracket_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom task whose class names are rich markup (``[/]`` cannot be a folder: labels come from CSVs)."""
    folder = tmp_path_factory.mktemp("brackets")
    n = 0
    for modality in ("hi", "lo"):
        lines = ["path,label,split"]
        for split, count in (("train", 2), ("val", 1), ("test", 1)):
            for label in range(len(BRACKETED)):
                for _ in range(count):
                    n += 1
                    png(folder / modality / f"{n}.png", n)
                    lines.append(f"{n}.png,{label},{split}")
        (folder / modality / "labels.csv").write_text("\n".join(lines) + "\n")
    return custom_task(folder, BRACKETED, data={"hi": "hi/labels.csv", "lo": "lo/labels.csv"})


@pytest.fixture(scope="session")
def bracket_run(tmp_path_factory: pytest.TempPathFactory, bracket_task: Path) -> Path:
    """A short run of the bracketed task, under an output folder whose path holds rich markup too."""
    out = tmp_path_factory.mktemp("runs") / "x[" / "y]"
    result = cli(*train_args(bracket_task, out))
    assert result.code == 0, result.err
    [folder] = run_folders(out)
    return folder


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal 400 columns wide: rich wraps table cells at the terminal width; paths stay whole."""
    monkeypatch.setenv("COLUMNS", "400")


class ChatServer:
    """Answers ``POST /v1/chat/completions`` with JSON descriptions; requires ``key`` as a bearer token and,
    like OpenAI, echoes a wrong key in its 401 message. Records the headers it received. A test may replace
    ``answer``; a payload given as bytes is sent as it is. The handler reads the whole request body into
    ``handler.body`` before ``answer`` runs: a socket closed with unread request bytes is reset by the
    kernel, which can cut the client's read of the answer short."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.headers: list[dict[str, str]] = []
        self.base_url = ""

    def answer(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, Any]]:
        body = json.loads(handler.body)  # type: ignore[attr-defined]
        self.headers.append(dict(handler.headers))
        given = handler.headers.get("Authorization", "").removeprefix("Bearer ")
        if given != self.key:
            return 401, {"error": {"message": f"Incorrect API key provided: {given}.", "type": "auth"}}
        prompt = json.dumps(body["messages"])
        items = [f"finding {abs(hash((prompt, i))) % 10_000} seen on the scan" for i in range(8)]
        content = json.dumps({"descriptions": items})
        return 200, {
            "id": "x",
            "object": "chat.completion",
            "model": body.get("model", "m"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
        }


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server_state = ChatServer(key="sk-kmat-test-" + os.urandom(8).hex())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            status, payload = server_state.answer(self)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as server_state.base_url:
        yield server_state


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``read_only(folder)`` makes ``folder`` unwritable: chmod 0o555 for a normal user; as root (who
    ignores permissions) creating anything inside it raises EACCES, as the kernel would for a user."""

    def make(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            folder.chmod(0o555)
            restore.append(folder)
            return folder
        inside = str(folder.resolve())

        def denied(path: Any) -> bool:
            p = os.path.abspath(os.fspath(path))
            return p == inside or p.startswith(inside + os.sep)

        def refuse(path: Any) -> OSError:
            return PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        real_mkdir, real_mkstemp, real_open = os.mkdir, tempfile.mkstemp, builtins.open

        def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
            if denied(os.path.dirname(os.path.abspath(os.fspath(path)))):
                raise refuse(path)
            real_mkdir(path, *args, **kwargs)

        def mkstemp(*args: Any, dir: Any = None, **kwargs: Any) -> tuple[int, str]:
            if dir is not None and denied(dir):
                raise refuse(os.path.join(dir, "tmp"))
            return real_mkstemp(*args, dir=dir, **kwargs)

        def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, (str, os.PathLike)) and set(mode) & set("wax+") and denied(file):
                raise refuse(file)
            return real_open(file, mode, *args, **kwargs)

        monkeypatch.setattr(os, "mkdir", mkdir)
        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(builtins, "open", open_)
        monkeypatch.setattr(io, "open", open_)
        return folder

    restore: list[Path] = []
    yield make
    for folder in restore:
        folder.chmod(0o755)
