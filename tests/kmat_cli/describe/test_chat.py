"""The chat client: Retry-After read in its forms, retry waits capped, the key redacted from every message,
client errors as one line, why an endpoint is unreachable, headers, and the request cache's key; the API key
never written to a file or printed."""

from __future__ import annotations

import email.utils
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_llm import completion
from faults import assert_error, cli, custom_task, train_args

from kmat_cli.describe.chat import (
    ChatClient,
    Endpoint,
    EndpointUnreachable,
    RequestCache,
    request_key,
    retry_after,
)
from kmat_cli.errors import RuntimeFailure, UsageError


# ------------------------------------------------------------------------------------------- retry waits
def test_retry_after_forms() -> None:
    assert retry_after(httpx.Headers({"Retry-After": "7"})) == 7.0
    assert retry_after(httpx.Headers({"retry-after-ms": "250", "Retry-After": "9"})) == 0.25
    assert retry_after(httpx.Headers({})) is None
    assert retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert retry_after(httpx.Headers({"Retry-After": date}), now=1_000_000) == pytest.approx(30.0)


def _client(handler, **endpoint) -> ChatClient:
    ep = Endpoint(base_url="https://llm.example.org/v1?api-version=2024", api_key="sk-KEY-xyz", **endpoint)
    return ChatClient(ep, http=httpx.Client(transport=httpx.MockTransport(handler)))


def test_retry_waits_are_capped_and_messages_redact_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    notes: list[str] = []
    monkeypatch.setattr("kmat_cli.describe.chat._sleep", sleeps.append)
    answers = iter([httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(503), completion()])
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return next(answers)

    client = _client(handler, max_wait=5.0, backoff=0.5)
    client.notify = notes.append
    assert client.complete({"model": "m", "messages": []}).content == '["a b"]'
    assert sleeps[0] == 5.0 and 1.0 <= sleeps[1] <= 1.1  # Retry-After capped; backoff 0.5 * 2**1 + jitter
    assert str(seen[0].url) == "https://llm.example.org/v1/chat/completions?api-version=2024"
    assert seen[0].headers["authorization"] == "Bearer sk-KEY-xyz" and "api-key" not in seen[0].headers
    assert len(notes) == 2 and all("KEY" not in n for n in notes)


def test_client_errors_are_one_line_usage_errors() -> None:
    def echo_key(request: httpx.Request) -> httpx.Response:
        key = request.headers["authorization"]
        return httpx.Response(400, json={"error": {"message": f"temperature too high for {key}"}})

    with pytest.raises(UsageError) as info:
        _client(echo_key).complete({"model": "m", "messages": []})
    assert "refused the request (HTTP 400: temperature too high for Bearer ***)" in str(info.value)
    ollama_404 = httpx.Response(
        404, json={"error": {"message": 'model "llama9" not found, try pulling it first'}}
    )
    with pytest.raises(UsageError, match=r"model 'llama9' is not available at llm\.example\.org"):
        _client(lambda r: ollama_404).complete({"model": "llama9", "messages": []})
    with pytest.raises(UsageError, match="is not a chat completion"):
        _client(lambda r: httpx.Response(200, text="<html>hello</html>")).complete(
            {"model": "m", "messages": []}
        )


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (httpx.ConnectError("[Errno -2] Name or service not known"), "host name not resolved"),
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection refused"),
        (httpx.ConnectTimeout("timed out"), "timed out connecting"),
    ],
)
def test_unreachable_reasons(exc: Exception, reason: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(EndpointUnreachable) as info:
        _client(handler).complete({"model": "m", "messages": []})
    message = str(info.value)
    assert isinstance(info.value, RuntimeFailure) and info.value.exit_code == 1
    assert f"({reason})" in message and "\n" not in message and "api-version" not in message


def test_azure_hosts_also_get_the_api_key_header() -> None:
    ep = Endpoint(base_url="https://res.openai.azure.com/openai/v1", api_key="k")
    assert ep.headers()["api-key"] == "k" and ep.headers()["Authorization"] == "Bearer k"
    assert "Authorization" not in Endpoint(base_url="http://localhost:11434/v1").headers()
    assert Endpoint(base_url="http://user:pw@localhost:8000/v1?x=1").host == "localhost:8000"
    assert "sk-zzz" not in repr(Endpoint(base_url="http://h/v1", api_key="sk-zzz"))


def test_cache_key_ignores_key_and_query_and_counts_repeats(tmp_path: Path) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    a = Endpoint(base_url="http://h:1/v1?token=1", api_key="one")
    b = Endpoint(base_url="http://h:1/v1", api_key="two")
    assert request_key(a, body) == request_key(b, body) != request_key(b, body, repeat=1)
    assert request_key(b, body) != request_key(Endpoint(base_url="http://other:1/v1"), body)
    cache = RequestCache(tmp_path)
    assert cache.get("nope") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert cache.get("bad") is None


# --------------------------------------------------------------------------------------------- API keys
@pytest.mark.usefixtures("no_progress")
def test_api_keys_are_never_written(
    tmp_path: Path, chat_server: Any, monkeypatch: pytest.MonkeyPatch, fresh_cache: Path
) -> None:
    """``kmat describe`` with a key from the environment (a success, a cached rerun, a rejected key whose
    401 message echoes it), then a training run with the key set: no file written anywhere, and no output
    line, contains the key."""
    key = chat_server.key
    monkeypatch.chdir(tmp_path)
    task = custom_task(tmp_path / "task", per_split={"train": 2, "test": 1})
    common = ["describe", "--task", task, "-n", "4", "--base-url", chat_server.base_url, "--model", "m"]
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("MY_KEY", key)
    outputs = [cli(*common, "--output", tmp_path / "d.json")]
    outputs.append(cli(*common, "--output", tmp_path / "d2.json"))  # from the cache
    outputs.append(cli(*common, "--api-key-env", "MY_KEY", "--no-cache", "--output", tmp_path / "d3.json"))
    assert all(r.code == 0 for r in outputs), [r.err for r in outputs]
    assert all(h.get("Authorization") == f"Bearer {key}" for h in chat_server.headers)  # the key was used
    monkeypatch.setenv("OPENAI_API_KEY", key + "-wrong")
    rejected = cli(*common, "--no-cache", "--output", tmp_path / "d4.json")
    assert_error(rejected, "rejected the API key")
    outputs.append(rejected)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    outputs.append(cli(*train_args(task, tmp_path / "runs", "--descriptions", tmp_path / "d.json")))
    assert outputs[-1].code == 0, outputs[-1].err
    outputs.append(cli("env"))
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" and "describe" in p.parts for p in written), "the request cache was used"
    assert len(written) > 20
    for needle in (key, key + "-wrong"):
        leaks = [p for p in written if needle.encode() in p.read_bytes()]
        assert not leaks, f"the API key was written to {leaks}"
        assert not [r for r in outputs if needle in r.out or needle in r.err], "the API key was printed"
