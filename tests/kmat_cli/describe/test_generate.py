"""The describe library's parts: answer parsing, validation, the template, retry waits, documents, errors."""

from __future__ import annotations

import email.utils
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from kmat_cli import describe as lib
from kmat_cli.api import DESCRIPTIONS_FORMAT, load_descriptions
from kmat_cli.describe.chat import (
    ChatClient,
    Endpoint,
    EndpointUnreachable,
    RequestCache,
    request_key,
    retry_after,
)
from kmat_cli.errors import RuntimeFailure, UsageError

ITEMS = ["Round lesion with a smooth margin", "Dark blotch at the centre"]


# ------------------------------------------------------------------------------------------------ parsing
@pytest.mark.parametrize(
    "answer",
    [
        json.dumps({"descriptions": ITEMS}),
        json.dumps(ITEMS),
        "```json\n" + json.dumps({"descriptions": ITEMS}) + "\n```",
        "Sure, here you are.\n```\n" + json.dumps(ITEMS, indent=2) + "\n```\nAnything else?",
        "Here is the JSON: " + json.dumps({"Descriptions": ITEMS}) + " Hope it helps.",
        json.dumps({"melanoma": {"dermoscopy": ITEMS}}),
        json.dumps([{"description": t, "id": i} for i, t in enumerate(ITEMS)]),
        "Here are two descriptions:\n1. Round lesion with a smooth margin\n2) Dark blotch at the centre\n",
        "- Round lesion with a smooth margin\n* Dark blotch at the centre",
        "Round lesion with a smooth margin\nDark blotch at the centre\n",
        '<think>they want json, maybe {"descriptions": ["nope"]}</think>\n' + json.dumps(ITEMS),
        '{"descriptions": [\n  "Round lesion with a smooth margin",\n  "Dark blotch at the centre",\n  "Trunc',
    ],
)
def test_parse_answer_formats(answer: str) -> None:
    got = lib.accept(lib.parse_answer(answer), max_words=30, seen=set(), rejected=lib.Rejected())
    assert got[:2] == ITEMS


def test_clean_strips_markers_quotes_emphasis() -> None:
    assert lib.clean('  3. "**Blue-white veil** over the lesion",') == "Blue-white veil over the lesion"
    assert lib.clean("• \u2018Irregular   dots\u2019") == "Irregular dots"
    assert lib.clean("(12) Milia-like cysts") == "Milia-like cysts"
    assert lib.clean("3D-looking plaque") == "3D-looking plaque"  # a leading number is not a marker


def test_accept_validates_and_counts() -> None:
    seen: set[str] = set()
    rejected = lib.Rejected()
    items = [
        "A pink nodule.",
        "a PINK nodule",
        "",
        "12.",
        "one two three four five six",
        "A pink nodule!",
        "B",
    ]
    got = lib.accept(items, max_words=5, seen=seen, rejected=rejected)
    assert got == ["A pink nodule.", "B"]
    assert (rejected.empty, rejected.too_long, rejected.duplicate) == (2, 1, 2)
    assert lib.accept(["A  pink, nodule"], max_words=5, seen=seen, rejected=rejected) == []  # seen before


# ----------------------------------------------------------------------------------------------- template
def test_default_template_renders_every_section() -> None:
    template = lib.PromptTemplate.load()
    path = Path(lib.__file__).parent / "templates" / lib.DEFAULT_TEMPLATE
    assert template.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    values = {p: f"<{p}>" for p in lib.PLACEHOLDERS}
    messages = template.messages(values, accepted=["a", "b"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert json.loads(messages[2]["content"]) == {"descriptions": ["a", "b"]}
    text = "\n".join(m["content"] for m in messages)
    assert "{{" not in text and "<!--" not in text and "Placeholders" not in text
    assert "<class_name>" in messages[1]["content"] and "<missing>" in messages[3]["content"]


def test_template_errors_name_the_file() -> None:
    with pytest.raises(UsageError, match=r"t\.md: unknown section '## assistant'"):
        lib.PromptTemplate.parse(b"## user\nx\n## assistant\ny", "t.md")
    with pytest.raises(UsageError, match=r"t\.md: the prompt template has no '## user' message"):
        lib.PromptTemplate.parse(b"## system\nx", "t.md")
    with pytest.raises(UsageError, match=r"unknown placeholder '\{\{clas\}\}'"):
        lib.PromptTemplate.parse(b"describe {{clas}}", "t.md")
    with pytest.raises(UsageError, match="cannot read the prompt template"):
        lib.PromptTemplate.load("/no/such/template.md")
    bare = lib.PromptTemplate.parse(b'Describe {{class_name}} {"as": json}', "t.md")
    assert bare.messages({"class_name": "x"}) == [{"role": "user", "content": 'Describe x {"as": json}'}]
    assert "{{missing}}" in bare.sections["top-up"]


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


def _ok(text: str = '["a b"]') -> httpx.Response:
    return httpx.Response(200, json={"model": "m-1", "choices": [{"message": {"content": text}}]})


def test_retry_waits_are_capped_and_messages_redact_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    notes: list[str] = []
    monkeypatch.setattr("kmat_cli.describe.chat._sleep", sleeps.append)
    answers = iter([httpx.Response(429, headers={"Retry-After": "3600"}), httpx.Response(503), _ok()])
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


def test_describe_library_with_a_fake_task_and_mock_transport(tmp_path: Path) -> None:
    """The library entry point takes class names and modality words directly (no registry)."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        user = body["messages"][1]["content"]
        cls = "cyst" if '"cyst"' in user else "mass"
        words = "ultrasound" if "ultrasound image" in user else "mammogram"
        return _ok(json.dumps([f"{cls} seen on {words} number {i}" for i in range(3)]))

    client = ChatClient(
        Endpoint(base_url="http://x/v1"),
        cache=RequestCache(tmp_path / "cache"),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
    )
    progress: dict[str, int] = {}

    def on_progress(c: str, k: int) -> None:
        progress[c] = progress.get(c, 0) + k

    result = lib.describe(
        ["mass", "cyst"],
        {"hi": "mammogram", "lo": "ultrasound"},
        client=client,
        settings=lib.Settings(model="m", n=3, concurrency=2),
        task="breast",
        on_progress=on_progress,
    )
    assert result.classes["cyst"]["lo"] == [f"cyst seen on ultrasound number {i}" for i in range(3)]
    assert result.classes["mass"]["hi"][0] == "mass seen on mammogram number 0"
    assert progress == {"mass": 6, "cyst": 6} and (result.sent, result.cached) == (4, 0)
    path = tmp_path / "d.json"
    lib.write_document(path, result.document())
    assert load_descriptions(path, ["mass", "cyst"])["lo"]["mass"][2] == "mass seen on ultrasound number 2"
    with pytest.raises(UsageError, match="unknown modality 'mid'"):
        lib.describe(["a"], {"hi": "x"}, client=client, which=["mid"])
    with pytest.raises(UsageError, match="without repeats"):
        lib.describe(["a", "a"], {"hi": "x"}, client=client)


# ---------------------------------------------------------------------------------------------- documents
def test_read_document_expands_the_bare_form(tmp_path: Path) -> None:
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"mass": ["a"], "cyst": ["b"]}))
    doc = lib.read_document(bare)
    assert doc["format"] == DESCRIPTIONS_FORMAT
    assert doc["classes"]["cyst"] == {"hi": ["b"], "lo": ["b"]}
    assert doc["provenance"] == {"source": "file bare.json"}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": DESCRIPTIONS_FORMAT, "classes": {"mass": {"hi": "not a list"}}}))
    with pytest.raises(UsageError, match=r"bad\.json: class 'mass' must map modalities to lists"):
        lib.read_document(bad)


def test_merge_documents() -> None:
    base = {
        "format": DESCRIPTIONS_FORMAT,
        "provenance": {"tool": "kmat describe", "model": "old", "merged": [{"source": "hand"}]},
        "classes": {"mass": {"hi": ["m hi"], "lo": ["m lo"]}, "cyst": {"hi": ["c hi"], "lo": ["c lo"]}},
    }
    new = {
        "format": DESCRIPTIONS_FORMAT,
        "provenance": {"model": "new"},
        "classes": {"mass": {"lo": ["new"]}},
    }
    merged = lib.merge_documents(base, new)
    assert merged["classes"] == {
        "mass": {"hi": ["m hi"], "lo": ["new"]},
        "cyst": {"hi": ["c hi"], "lo": ["c lo"]},
    }
    assert merged["provenance"] == {
        "model": "new",
        "merged": [{"tool": "kmat describe", "model": "old"}, {"source": "hand"}],
    }
    assert base["classes"]["mass"]["lo"] == ["m lo"]  # inputs untouched


def test_settings_validation() -> None:
    with pytest.raises(UsageError, match="-n must be between"):
        lib.Settings(n=0)
    with pytest.raises(UsageError, match="--concurrency"):
        lib.Settings(concurrency=0)
