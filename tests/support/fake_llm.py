"""A fake OpenAI-compatible chat server (http.server on 127.0.0.1, port 0) and a fake task for describe tests.

The server answers ``POST /v1/chat/completions`` like OpenAI does. Tests steer it through attributes:
``mode`` (answer format: json, fenced, numbered, dupes, prose), ``per_answer`` (items per answer),
``script`` (responses to give first, e.g. ``[(429, {"Retry-After": "7"}, None)]``), ``delay`` and
``slow_requests`` (sleep before answering the first k requests, or all with ``slow_requests=None``),
``api_key`` (required bearer key; a wrong one gets 401 with the key echoed, as OpenAI does), ``models``
(others get vLLM's 404 "model does not exist"), ``trickle`` (seconds between single bytes of the answer
body), ``padding`` (bytes of trailing whitespace after the JSON answer, sent in 1 MiB blocks) and
``declare_length`` (send Content-Length; without it the body ends when the connection closes). It records
every request (path, headers, body, arrival time on ``time.monotonic``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

FAKE_TASK_MODULE = "kmat_describe_fake_task"
FAKE_TASK = f"{FAKE_TASK_MODULE}:FakeTask"
FAKE_TASK_SOURCE = '''
class FakeTask:
    """A three-class task for describe tests."""

    name = "fake"
    class_names = ["nevus", "melanoma", "basal cell carcinoma"]
    modalities = {"hi": "dermoscopy", "lo": "clinical photograph"}

    @property
    def descriptions(self):
        return {m: {c: [f"shipped {c} in {m}"] for c in self.class_names} for m in ("hi", "lo")}
'''


class FakeLLM:
    def __init__(self) -> None:
        self.mode = "json"
        self.per_answer = 5
        self.script: list[tuple[int, dict[str, str], Any]] = []
        self.delay = 0.0
        self.slow_requests: int | None = 0
        self.api_key: str | None = None
        self.models = {"fake-model"}
        self.trickle = 0.0
        self.padding = 0
        self.declare_length = True
        self.requests: list[dict[str, Any]] = []
        self.inflight = 0
        self.max_inflight = 0
        self.lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ answers
    def items(self, body: dict[str, Any]) -> list[str]:
        """Distinct items per (class, modality) prompt; a top-up continues after the ones already given."""
        messages = body["messages"]
        first_user = next(m["content"] for m in messages if m["role"] == "user")
        tag = hashlib.sha1(first_user.encode()).hexdigest()[:6]
        offset = 0
        for m in messages:
            if m["role"] == "assistant":
                offset = len(json.loads(m["content"])["descriptions"])
        return [f"lesion {tag} shows visible feature number {offset + i}" for i in range(self.per_answer)]

    def content(self, body: dict[str, Any]) -> str:
        items = self.items(body)
        if self.mode == "json":
            return json.dumps({"descriptions": items})
        if self.mode == "fenced":
            return (
                "Here they are:\n```json\n" + json.dumps({"descriptions": items}, indent=1) + "\n```\nDone."
            )
        if self.mode == "numbered":
            return "Sure! Descriptions:\n" + "\n".join(f"{i + 1}. {t}." for i, t in enumerate(items))
        if self.mode == "dupes":  # each item twice (case and punctuation changed), plus junk items
            doubled = [v for t in items for v in (t, t.upper() + "!")]
            return json.dumps({"descriptions": [*doubled, "", "  ", " ".join(["word"] * 80)]})
        if self.mode == "prose":
            return "\n".join(items)
        raise AssertionError(self.mode)

    def respond(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], Any]:
        length = int(handler.headers.get("Content-Length", 0))
        body = json.loads(handler.rfile.read(length))
        with self.lock:
            index = len(self.requests)
            self.requests.append(
                {
                    "path": handler.path,
                    "headers": dict(handler.headers),
                    "body": body,
                    "time": time.monotonic(),
                }
            )
            scripted = self.script.pop(0) if self.script else None
        slow = self.slow_requests is None or index < self.slow_requests
        if self.delay and slow:
            time.sleep(self.delay)
        if scripted is not None:
            return scripted
        if not handler.path.startswith("/v1/chat/completions"):
            return 404, {}, {"detail": "Not Found"}
        if self.api_key is not None:
            given = handler.headers.get("Authorization", "").removeprefix("Bearer ")
            if given != self.api_key:
                message = f"Incorrect API key provided: {given}. You can find your API key at the dashboard."
                return 401, {}, {"error": {"message": message, "type": "invalid_request_error"}}
        if body.get("model") not in self.models:
            message = f"The model `{body.get('model')}` does not exist."
            return 404, {}, {"error": {"message": message, "type": "NotFoundError", "code": 404}}
        answer = {
            "id": f"chatcmpl-{index}",
            "object": "chat.completion",
            "model": body["model"] + "-2024",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.content(body)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
        }
        return 200, {}, answer


def _handler(llm: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            with llm.lock:
                llm.inflight += 1
                llm.max_inflight = max(llm.max_inflight, llm.inflight)
            try:
                status, headers, payload = llm.respond(self)
                data = json.dumps(payload).encode() if payload is not None else b'{"error": {"message": "x"}}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if llm.declare_length:
                    self.send_header("Content-Length", str(len(data) + llm.padding))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if llm.trickle:
                    for i in range(len(data)):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(llm.trickle)
                else:
                    self.wfile.write(data)
                block = b" " * (1 << 20)
                for start in range(0, llm.padding, len(block)):
                    self.wfile.write(block[: llm.padding - start])
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)
            finally:
                with llm.lock:
                    llm.inflight -= 1

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (a free port) in a daemon thread; yields the base URL
    ``http://127.0.0.1:<port>/v1``; the server is shut down on exit."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    llm = FakeLLM()
    with serving(_handler(llm)) as llm.base_url:
        yield llm


@pytest.fixture
def fake_task(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """``module:attr`` of a fake task, importable in this process and (via PYTHONPATH) in subprocesses."""
    root = tmp_path_factory.getbasetemp() / "describe-fake-task"
    root.mkdir(exist_ok=True)
    (root / f"{FAKE_TASK_MODULE}.py").write_text(FAKE_TASK_SOURCE)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", str(root))
    return FAKE_TASK


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh kmat cache and working directory; no key or base URL from the caller's environment."""
    monkeypatch.setenv("KMAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Waits the chat client asked for, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr("kmat_cli.describe.chat._sleep", recorded.append)
    return recorded


def completion(text: str = '["a b"]') -> Any:
    """An HTTP 200 chat completion whose answer is ``text`` (for an ``httpx.MockTransport`` handler)."""
    import httpx

    return httpx.Response(200, json={"model": "m-1", "choices": [{"message": {"content": text}}]})


def describe_args(llm: Any, task: str, *extra: str, n: int = 5) -> list[str]:
    return [
        "describe",
        "--task",
        task,
        "--base-url",
        llm.base_url,
        "--model",
        "fake-model",
        "-n",
        str(n),
        *extra,
    ]
