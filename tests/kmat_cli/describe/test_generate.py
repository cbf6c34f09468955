"""Descriptions asked for per class and modality (`describe`) through a mock transport, and its settings checked."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fake_llm import completion

from kmat_cli import describe as lib
from kmat_cli.api import load_descriptions
from kmat_cli.describe.chat import ChatClient, Endpoint, RequestCache
from kmat_cli.errors import UsageError


def test_describe_library_with_a_fake_task_and_mock_transport(tmp_path: Path) -> None:
    """The library entry point takes class names and modality words directly (no registry)."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        user = body["messages"][1]["content"]
        cls = "cyst" if '"cyst"' in user else "mass"
        words = "ultrasound" if "ultrasound image" in user else "mammogram"
        return completion(json.dumps([f"{cls} seen on {words} number {i}" for i in range(3)]))

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


def test_settings_validation() -> None:
    with pytest.raises(UsageError, match="-n must be between"):
        lib.Settings(n=0)
    with pytest.raises(UsageError, match="--concurrency"):
        lib.Settings(concurrency=0)
