"""A small client for OpenAI-compatible chat-completions endpoints, with retries and a request cache.

Any server that speaks ``POST {base_url}/chat/completions`` works: OpenAI, Azure OpenAI, vLLM, Ollama,
LM Studio, llama.cpp's server. ``base_url`` keeps its query string (Azure's ``?api-version=...``).

Contract of :meth:`ChatClient.complete`:
- Retries: HTTP 408, 409, 429 and every 5xx, and read/write timeouts or dropped connections, are retried
  up to ``max_retries`` times. The wait before retry ``r`` (0-based) is the server's ``Retry-After``
  (seconds or an HTTP date; ``retry-after-ms`` too) when it sends one, else ``backoff * 2**r`` plus up to
  10% jitter; either is capped at ``max_wait`` seconds.
- Deadline and size: ``timeout`` bounds the whole exchange, connect to last byte, not each read: a server
  that trickles its headers or body, or falls silent, is cut off once ``timeout`` seconds have passed since
  the request was made (:mod:`kmat_cli.describe.deadline`), and counts as a timeout (retried). An
  answer larger than ``MAX_ANSWER_BYTES`` (8 MiB; by its Content-Length or as it arrives) is refused at
  once, never retried nor cached.
- Errors (one line each): 401/403 and other 4xx are :class:`UsageError` (exit code 2: the key, the model
  or the request is wrong and retrying cannot help); 404 says whether the model or the endpoint is
  missing. Connection refused, an unresolvable host or a connect timeout is :class:`EndpointUnreachable`
  (a :class:`RuntimeFailure`, exit code 1); so are retries that run out.
- The API key travels only in the ``Authorization`` header (and ``api-key`` for Azure hosts). It is no
  part of a cache key or record, is never logged, and is redacted from every message this module makes.
- Cache: a successful answer is stored as JSON under ``root/<sha256>.json``, keyed by
  :func:`request_key` (endpoint URL without query or credentials, request body, repeat index), so the
  same request is never sent twice.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from kmat_cli import atomic, datafiles
from kmat_cli.describe.deadline import Cutoff
from kmat_cli.errors import RuntimeFailure, UsageError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
RETRY_STATUS = frozenset({408, 409, 429})
MAX_ANSWER_BYTES = 8 << 20  # a chat answer is a few KB; anything near this is not one


class _Deadline(Exception):
    """The whole answer did not arrive within the endpoint's timeout."""


@dataclass(frozen=True)
class _Answer:
    """A complete HTTP answer read within the deadline and size limit."""

    status_code: int
    headers: Any
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self, source: str = "the answer") -> Any:
        """The body as JSON (:func:`kmat_cli.datafiles.parse_json`: bounded, finite numbers only)."""
        return datafiles.parse_json(self.content, source)


class EndpointUnreachable(RuntimeFailure):
    """No server answered at the endpoint (connection refused, host not resolved, connect timeout)."""


def _sleep(seconds: float) -> None:
    """The one place this module waits (tests replace it)."""
    time.sleep(seconds)


@dataclass(frozen=True)
class Endpoint:
    """Where to send chat requests and how patiently.

    ``key_env`` only names the variable the key came from, for messages; the key itself is ``api_key``
    (``None`` sends no ``Authorization`` header, as local servers need none).
    """

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0
    max_retries: int = 5
    backoff: float = 1.0
    max_wait: float = 120.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(
                f"--base-url '{self._safe(self.base_url)}' is not an http(s) URL; "
                "e.g. https://api.openai.com/v1 or http://localhost:11434/v1"
            )
        if self.timeout <= 0 or self.max_retries < 0 or self.backoff < 0 or self.max_wait < 0:
            raise UsageError("timeout must be > 0 and max_retries, backoff, max_wait >= 0")

    @property
    def url(self) -> str:
        """``{base_url}/chat/completions``, the query string of ``base_url`` kept."""
        p = urlsplit(self.base_url)
        return urlunsplit((p.scheme, p.netloc, p.path.rstrip("/") + "/chat/completions", p.query, ""))

    @property
    def host(self) -> str:
        """Host name and port of the endpoint, without credentials (what provenance records)."""
        p = urlsplit(self.base_url)
        return (p.hostname or "") + (f":{p.port}" if p.port else "")

    @property
    def public_url(self) -> str:
        """The chat URL without credentials or query string (safe to print and to hash)."""
        p = urlsplit(self.url)
        return urlunsplit((p.scheme, self.host, p.path, "", ""))

    def headers(self) -> dict[str, str]:
        out = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            out["Authorization"] = f"Bearer {self.api_key}"
            if self.host.split(":")[0].endswith((".azure.com", ".azure-api.net")):
                out["api-key"] = self.api_key
        return out

    def _safe(self, text: str) -> str:
        """``text`` with the API key (if any) replaced by ``***``."""
        return text.replace(self.api_key, "***") if self.api_key else text


@dataclass(frozen=True)
class Completion:
    """One answer: the message text, the model the server says answered, token usage, cache hit."""

    content: str
    model: str | None
    usage: dict[str, int]
    cached: bool


def request_key(endpoint: Endpoint, body: dict[str, Any], repeat: int = 0) -> str:
    """SHA-256 of the canonical JSON of (endpoint URL without query or credentials, body, repeat).

    ``repeat`` counts earlier identical requests of the same job, so asking the same thing twice on
    purpose (a top-up that gained nothing) is a different cache entry, and a rerun replays both.
    """
    blob = json.dumps(
        {"url": endpoint.public_url, "body": body, "repeat": repeat}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestCache:
    """Answers stored as ``root/<key>.json`` (``{"request": body, "host": ..., "response": {...}}``), a
    folder kmat owns: an entry that is a symbolic link is a miss and is replaced, a linked ``root`` (or
    folder above it, up to the cache root) is refused (:mod:`kmat_cli.atomic`)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        atomic.own(self.root)

    def get(self, key: str) -> dict[str, Any] | None:
        path = self.root / f"{key}.json"
        atomic.check_owned(self.root)
        try:
            record = datafiles.read_owned_json(path)
        except (OSError, datafiles.DataError):
            return None
        response = record.get("response") if isinstance(record, dict) else None
        return response if isinstance(response, dict) and isinstance(response.get("content"), str) else None

    def put(self, key: str, host: str, body: dict[str, Any], response: dict[str, Any]) -> None:
        atomic.write_json(self.root / f"{key}.json", {"host": host, "request": body, "response": response})


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _server_message(response: Any) -> str:
    """The error message a server put in its JSON body ({"error": {"message": ...}}), else its text."""
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError, datafiles.DataError):
        return _one_line(response.text or "")
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        return _one_line(err.get("message") or err.get("detail") or json.dumps(err))
    return _one_line(err if isinstance(err, str) else json.dumps(err))


def retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, or ``Retry-After`` as seconds or HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _unreachable_reason(exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    text = str(exc).lower()
    if any(s in text for s in ("name or service", "nodename", "getaddrinfo", "name resolution", "not known")):
        return "host name not resolved"
    if "refused" in text or "errno 111" in text or "errno 61" in text:
        return "connection refused"
    return _one_line(str(exc), 80) or type(exc).__name__


def offline_message(endpoint: Endpoint, reason: str) -> str:
    """The one-line message for an endpoint nobody answers at, pointing to the shipped descriptions."""
    return (
        f"no endpoint reachable at {endpoint.public_url} ({reason}); kmat describe needs an "
        "OpenAI-compatible server (--base-url, e.g. a local Ollama or vLLM). Offline, use the hand-written "
        "descriptions every task ships: kmat train uses them by default"
    )


class ChatClient:
    """Send chat-completions requests with retries, through an optional :class:`RequestCache`.

    ``notify(message)`` receives one line per retry (default: the module logger); ``http`` lets a caller
    pass its own ``httpx.Client`` (tests, proxies). Thread-safe: one client serves concurrent jobs.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        cache: RequestCache | None = None,
        notify: Callable[[str], None] | None = None,
        http: Any | None = None,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:
            raise UsageError("kmat describe needs httpx: pip install 'kmat[describe]'") from exc

        self.endpoint = endpoint
        self.cache = cache
        self.notify = notify or log.warning
        connect = min(10.0, endpoint.timeout)
        self._http = http or httpx.Client(
            timeout=httpx.Timeout(endpoint.timeout, connect=connect),
            limits=httpx.Limits(max_keepalive_connections=0),  # a fresh socket per exchange: see Cutoff
        )
        self._own_http = http is None

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(self, body: dict[str, Any], repeat: int = 0) -> Completion:
        """The answer to one request body (``model``, ``messages``, ...), from the cache when present."""
        key = request_key(self.endpoint, body, repeat) if self.cache else ""
        if self.cache:
            hit = self.cache.get(key)
            if hit is not None:
                return Completion(hit["content"], hit.get("model"), dict(hit.get("usage") or {}), True)
        data = self._post(body)
        completion = self._completion(data, body)
        if self.cache:
            record = {"content": completion.content, "model": completion.model, "usage": completion.usage}
            self.cache.put(key, self.endpoint.host, body, record)
        return completion

    # ------------------------------------------------------------------------------------------ internals
    def _wait(self, attempt: int, server_wait: float | None) -> float:
        ep = self.endpoint
        if server_wait is not None:
            return min(server_wait, ep.max_wait)
        base = ep.backoff * 2**attempt
        return min(base * (1.0 + 0.1 * random.random()), ep.max_wait)

    def _post(self, body: dict[str, Any]) -> Any:
        import httpx

        ep = self.endpoint
        last = ""
        for attempt in range(ep.max_retries + 1):
            server_wait = None
            try:
                response = self._request(body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise EndpointUnreachable(offline_message(ep, _unreachable_reason(exc))) from None
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise UsageError(f"--base-url: {ep._safe(_one_line(str(exc)))}") from None
            except (httpx.TimeoutException, _Deadline):
                last = f"no answer within {ep.timeout:g} s"
            except httpx.TransportError as exc:
                last = ep._safe(_one_line(f"{type(exc).__name__}: {exc}", 120))
            else:
                status = response.status_code
                if status < 400:
                    return self._json(response)
                if status not in RETRY_STATUS and status < 500:
                    raise self._client_error(response, body)
                last = f"HTTP {status}"
                server_wait = retry_after(response.headers)
            if attempt == ep.max_retries:
                break
            wait = self._wait(attempt, server_wait)
            self.notify(
                f"{ep.host}: {last}; retry {attempt + 1}/{ep.max_retries} in {wait:.1f} s"
                + (" (Retry-After)" if server_wait is not None else "")
            )
            _sleep(wait)
        tries = ep.max_retries + 1
        if last.startswith("no answer"):
            raise RuntimeFailure(
                f"{ep.host}: {last} after {tries} tries; raise --timeout or check that the server is running"
            )
        raise RuntimeFailure(
            f"{ep.host} kept failing ({last}) after {tries} tries; try again later or lower --concurrency"
        )

    def _request(self, body: dict[str, Any]) -> _Answer:
        """POST ``body`` and read the answer whole within ``timeout`` seconds and ``MAX_ANSWER_BYTES``."""
        import httpx

        ep = self.endpoint
        deadline = time.monotonic() + ep.timeout
        cutoff = Cutoff(ep.timeout)
        extensions = {"trace": cutoff.trace}
        try:
            with self._http.stream(
                "POST", ep.url, json=body, headers=ep.headers(), extensions=extensions
            ) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
                    raise self._too_large()
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        raise self._too_large()
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise _Deadline
                if cutoff.fired:  # the answer was cut short
                    raise _Deadline
                return _Answer(response.status_code, response.headers, b"".join(chunks))
        except httpx.TransportError:
            if cutoff.fired:
                raise _Deadline from None
            raise
        finally:
            cutoff.cancel()

    def _too_large(self) -> UsageError:
        return UsageError(
            f"the answer from {self.endpoint.public_url} is larger than {MAX_ANSWER_BYTES >> 20} MiB, not a "
            "chat completion; check --base-url (OpenAI-compatible servers serve /v1/chat/completions)"
        )

    def _json(self, response: Any) -> dict[str, Any]:
        problem = ""
        try:
            data = response.json("answer")
        except datafiles.DataError as exc:
            data, problem = None, f" ({str(exc).removeprefix('answer: ')})"
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise UsageError(
                f"the answer from {self.endpoint.public_url} is not a chat completion{problem}; check "
                "--base-url (OpenAI-compatible servers serve /v1/chat/completions)"
            )
        return data

    def _client_error(self, response: Any, body: dict[str, Any]) -> UsageError:
        ep = self.endpoint
        status = response.status_code
        if status in (401, 403):
            how = f"set {ep.key_env} (or --api-key-env NAME) to a valid key"
            return UsageError(f"{ep.host} rejected the API key (HTTP {status}); {how}")
        message = ep._safe(_server_message(response))
        model = body.get("model")
        lower = message.lower()
        missing = ("not found", "does not exist", "not exist", "unknown", "no such", "invalid model")
        if "model_not_found" in response.text or (
            "model" in lower and (status == 404 or any(s in lower for s in missing))
        ):
            return UsageError(
                f"model '{model}' is not available at {ep.host} (HTTP {status}: {message}); "
                "pass --model with a model the endpoint serves"
            )
        if status == 404:
            return UsageError(
                f"no chat-completions endpoint at {ep.public_url} (HTTP 404); check --base-url "
                "(it usually ends in /v1)"
            )
        return UsageError(f"{ep.host} refused the request (HTTP {status}: {message})")

    @staticmethod
    def _completion(data: dict[str, Any], body: dict[str, Any]) -> Completion:
        choice = data["choices"][0] if isinstance(data["choices"][0], dict) else {}
        message = choice.get("message") or {}
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        usage = {
            k: int(v)
            for k, v in (data.get("usage") or {}).items()
            if k in ("prompt_tokens", "completion_tokens", "total_tokens") and isinstance(v, (int, float))
        }
        model = data.get("model") if isinstance(data.get("model"), str) else None
        return Completion(content if isinstance(content, str) else "", model, usage, False)
