"""`kmat describe` end to end against a local fake OpenAI-compatible server, through kmat's entry point.

Most tests call ``kmat_cli.app.main`` (the console script's function) in this process so that the
client's waits can be recorded instead of slept; one runs the installed ``kmat`` script in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from fake_llm import describe_args
from kmat_runner import cli
from repo_paths import REPO

from kmat_cli.api import DESCRIPTIONS_FORMAT, load_descriptions

KEY = "sk-test-SECRET-4242-do-not-leak"
CLASSES = ["nevus", "melanoma", "basal cell carcinoma"]
PAIRS = len(CLASSES) * 2


def files_text(root: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def dedupe_key(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> Path:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return isolated


def test_fenced_json_gives_a_valid_file_with_provenance_and_no_key_anywhere(
    fake_llm: Any, fake_task: str, keyed: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_llm.mode, fake_llm.api_key = "fenced", KEY
    out_file = keyed / "out.json"
    code, out, err = cli(*describe_args(fake_llm, fake_task, "-o", str(out_file), "--seed", "3"))
    assert code == 0, err
    assert out.strip() == str(out_file)
    loaded = load_descriptions(out_file, CLASSES)  # what `kmat train --descriptions` reads
    assert all(len(loaded[m][c]) == 5 for m in ("hi", "lo") for c in CLASSES)
    doc = json.loads(out_file.read_text())
    assert doc["format"] == DESCRIPTIONS_FORMAT and list(doc["classes"]) == CLASSES
    prov = doc["provenance"]
    template = REPO / "kmat_cli" / "describe" / "templates" / "describe_prompt.md"
    assert prov["prompt_template_sha256"] == hashlib.sha256(template.read_bytes()).hexdigest()
    assert prov["model"] == "fake-model" and prov["models_answering"] == ["fake-model-2024"]
    assert prov["base_url_host"] == fake_llm.base_url.split("/")[2]
    assert (prov["temperature"], prov["seed"], prov["n"], prov["task"]) == (0.7, 3, 5, "fake")
    assert prov["requests"] == {"sent": PAIRS, "cached": 0} and prov["usage"]["total_tokens"] == 30 * PAIRS
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", prov["date"]) and prov["kmat_version"]
    # the key was sent, as a bearer token, and is nowhere else
    assert {r["headers"]["Authorization"] for r in fake_llm.requests} == {f"Bearer {KEY}"}
    assert all(r["body"]["seed"] == 3 and r["body"]["temperature"] == 0.7 for r in fake_llm.requests)
    cache_files = list((keyed / "cache" / "describe").glob("*.json"))
    assert len(cache_files) == PAIRS
    for text in (files_text(keyed), out, err, caplog.text):
        assert KEY not in text and "SECRET" not in text
    # the prompt asked per class and modality, with the modality words
    users = [r["body"]["messages"][1]["content"] for r in fake_llm.requests]
    assert sum('"melanoma"' in u and "clinical photograph image" in u for u in users) == 1


def test_rerun_hits_the_cache_and_sends_nothing(fake_llm: Any, fake_task: str, keyed: Path) -> None:
    first, second = keyed / "a.json", keyed / "b.json"
    assert cli(*describe_args(fake_llm, fake_task, "-o", str(first)))[0] == 0
    sent = len(fake_llm.requests)
    assert sent == PAIRS
    code, _, err = cli(*describe_args(fake_llm, fake_task, "-o", str(second)))
    assert code == 0, err
    assert len(fake_llm.requests) == sent  # zero new requests
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    assert a["classes"] == b["classes"]
    assert b["provenance"]["requests"] == {"sent": 0, "cached": PAIRS}
    assert "0 requests sent, 6 from the cache" in err
    # --no-cache asks again
    assert cli(*describe_args(fake_llm, fake_task, "-o", str(second), "--no-cache"))[0] == 0
    assert len(fake_llm.requests) == 2 * PAIRS


def test_numbered_lists_and_plain_lines_are_parsed(fake_llm: Any, fake_task: str, keyed: Path) -> None:
    for mode in ("numbered", "prose"):
        fake_llm.mode = mode
        out_file = keyed / f"{mode}.json"
        code, _, err = cli(*describe_args(fake_llm, fake_task, "-o", str(out_file), "--no-cache"))
        assert code == 0, err
        texts = json.loads(out_file.read_text())["classes"]["nevus"]["hi"]
        assert len(texts) == 5
        assert all(t.startswith("lesion ") and "visible feature number" in t for t in texts), texts


def test_duplicates_and_junk_are_dropped_and_topped_up(fake_llm: Any, fake_task: str, keyed: Path) -> None:
    fake_llm.mode, fake_llm.per_answer = "dupes", 2  # 2 distinct valid items per answer among 7
    out_file = keyed / "out.json"
    code, _, err = cli(*describe_args(fake_llm, fake_task, "-o", str(out_file), "--max-words", "20"))
    assert code == 0, err
    doc = json.loads(out_file.read_text())
    for entry in doc["classes"].values():
        for texts in entry.values():
            assert len(texts) == 5 and len({dedupe_key(t) for t in texts}) == 5
            assert all(t.strip() and len(t.split()) <= 20 for t in texts)
    assert len(fake_llm.requests) == 3 * PAIRS  # 2 + 2 + 1: two top-ups per pair
    rejected = doc["provenance"]["rejected"]
    assert rejected == {"empty": 2 * 3 * PAIRS, "too_long": 3 * PAIRS, "duplicate": 2 * 3 * PAIRS}
    # a top-up carries the accepted descriptions as the assistant turn, then asks for the missing ones
    topups = [r["body"]["messages"] for r in fake_llm.requests if len(r["body"]["messages"]) == 4]
    assert len(topups) == 2 * PAIRS
    assert any("Give 1 more" in m[3]["content"] for m in topups)
    assert all(len(json.loads(m[2]["content"])["descriptions"]) in (2, 4) for m in topups)


def test_too_few_items_topped_up_until_n(fake_llm: Any, fake_task: str, keyed: Path) -> None:
    fake_llm.per_answer = 3
    out_file = keyed / "out.json"
    code, _, err = cli(*describe_args(fake_llm, fake_task, "-o", str(out_file), n=8))
    assert code == 0, err
    doc = json.loads(out_file.read_text())
    assert all(len(t) == 8 for e in doc["classes"].values() for t in e.values())
    assert len(fake_llm.requests) == 3 * PAIRS  # 3 + 3 + 2 (the third answer's extra item is cut)


def test_never_enough_items_fails_with_one_line(fake_llm: Any, fake_task: str, keyed: Path) -> None:
    fake_llm.per_answer = 1
    code, out, err = cli(
        *describe_args(fake_llm, fake_task, "--max-rounds", "2", "--classes", "nevus", "--modalities", "hi"),
    )
    assert code == 1 and out == ""
    assert err.strip().splitlines()[-1].startswith("kmat: error: model 'fake-model' gave 2 of 5 valid")
    assert not (keyed / "fake.descriptions.json").exists()


def test_429_retry_after_is_honoured(fake_llm: Any, fake_task: str, keyed: Path, sleeps: list[float]) -> None:
    fake_llm.script = [(429, {"Retry-After": "7"}, {"error": {"message": "Rate limit reached"}})]
    code, _, err = cli(*describe_args(fake_llm, fake_task, "--concurrency", "1"))
    assert code == 0, err
    assert sleeps == [7.0]
    assert len(fake_llm.requests) == PAIRS + 1
    assert "HTTP 429; retry 1/5 in 7.0 s (Retry-After)" in err
    load_descriptions(keyed / "fake.descriptions.json", CLASSES)


def test_500_then_success_backs_off_exponentially(
    fake_llm: Any, fake_task: str, keyed: Path, sleeps: list[float]
) -> None:
    fake_llm.script = [(500, {}, None), (502, {}, None)]
    code, _, err = cli(*describe_args(fake_llm, fake_task, "--concurrency", "1"))
    assert code == 0, err
    assert len(sleeps) == 2 and 1.0 <= sleeps[0] <= 1.1 and 2.0 <= sleeps[1] <= 2.2  # backoff * 2**r + jitter
    assert len(fake_llm.requests) == PAIRS + 2


def test_persistent_503_gives_up_with_exit_1(
    fake_llm: Any, fake_task: str, keyed: Path, sleeps: list[float]
) -> None:
    fake_llm.script = [(503, {"Retry-After": "1"}, None)] * 3
    code, _, err = cli(
        *describe_args(fake_llm, fake_task, "--max-retries", "2", "--concurrency", "1", "--classes", "nevus"),
    )
    assert code == 1 and sleeps == [1.0, 1.0]
    assert err.strip().splitlines()[-1].startswith("kmat: error: 127.0.0.1:") and "HTTP 503" in err


def test_bad_key_exits_2_with_one_line_and_never_shows_the_key(
    fake_llm: Any, fake_task: str, keyed: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_llm.api_key = "sk-the-right-one"  # the server echoes the wrong key in its 401 message
    code, out, err = cli(*describe_args(fake_llm, fake_task))
    assert code == 2 and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("kmat: error: 127.0.0.1:") and "rejected the API key (HTTP 401)" in last
    assert "OPENAI_API_KEY" in last
    for text in (err, caplog.text, files_text(keyed)):
        assert KEY not in text and "SECRET" not in text
    assert not list(keyed.glob("*.json"))


def test_api_key_env_names_the_variable(
    fake_llm: Any,
    fake_task: str,
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_llm.api_key = KEY
    code, _, err = cli(*describe_args(fake_llm, fake_task, "--api-key-env", "MY_LLM_KEY"))
    assert code == 2 and "MY_LLM_KEY" in err and "not set" in err
    monkeypatch.setenv("MY_LLM_KEY", KEY)
    code, _, err = cli(*describe_args(fake_llm, fake_task, "--api-key-env", "MY_LLM_KEY"))
    assert code == 0, err
    assert fake_llm.requests[-1]["headers"]["Authorization"] == f"Bearer {KEY}"


def test_unknown_model_and_wrong_path_exit_2(fake_llm: Any, fake_task: str, keyed: Path) -> None:
    args = describe_args(fake_llm, fake_task)
    args[args.index("fake-model")] = "no-such-model"
    code, _, err = cli(*args)
    assert code == 2
    assert "model 'no-such-model' is not available at 127.0.0.1" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(*describe_args(fake_llm, fake_task, "--base-url", fake_llm.base_url[:-3]))
    assert code == 2 and "no chat-completions endpoint at" in err and "/chat/completions" in err


def test_slow_answer_times_out_and_is_retried(
    fake_llm: Any, fake_task: str, keyed: Path, sleeps: list[float]
) -> None:
    fake_llm.delay, fake_llm.slow_requests = 1.0, 1
    args = describe_args(fake_llm, fake_task, "--timeout", "0.3", "--concurrency", "1", "--classes", "nevus")
    code, _, err = cli(*args)
    assert code == 0, err
    assert len(sleeps) == 1 and "no answer within 0.3 s; retry 1/5" in err
    assert len(fake_llm.requests) == 3  # 1 timed out + 2 pairs


def test_always_slow_gives_up_with_exit_1(
    fake_llm: Any, fake_task: str, keyed: Path, sleeps: list[float]
) -> None:
    fake_llm.delay, fake_llm.slow_requests = 1.0, None
    args = describe_args(fake_llm, fake_task, "--timeout", "0.2", "--max-retries", "1", "--classes", "nevus")
    start = time.monotonic()
    code, _, err = cli(*args)
    assert code == 1 and time.monotonic() - start < 5
    assert "no answer within 0.2 s after 2 tries; raise --timeout" in err.strip().splitlines()[-1]


def test_unreachable_endpoint_exits_1_pointing_to_shipped_descriptions(fake_task: str, keyed: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["describe", "--task", fake_task, "--base-url", f"http://127.0.0.1:{port}/v1", "-n", "3"]
    code, out, err = cli(*args)
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert lines[-1].startswith(
        f"kmat: error: no endpoint reachable at http://127.0.0.1:{port}/v1/chat/completions"
    )
    assert "(connection refused)" in lines[-1] and "kmat train uses them by default" in lines[-1]
    assert not list((keyed / "cache").rglob("*.json"))


def test_concurrency_limit(fake_llm: Any, fake_task: str, keyed: Path) -> None:
    fake_llm.delay, fake_llm.slow_requests = 0.3, None
    code, _, err = cli(*describe_args(fake_llm, fake_task, "--concurrency", "2"))
    assert code == 0, err
    assert fake_llm.max_inflight == 2 and len(fake_llm.requests) == PAIRS


def test_merge_keeps_existing_classes_and_records_both_provenances(
    fake_llm: Any, fake_task: str, keyed: Path
) -> None:
    existing = keyed / "existing.json"
    old_prov = {"source": "hand-written", "author": "a dermatologist"}
    existing.write_text(
        json.dumps(
            {
                "format": DESCRIPTIONS_FORMAT,
                "provenance": old_prov,
                "classes": {
                    "seborrheic keratosis": {"hi": ["stuck-on waxy plaque"], "lo": ["brown waxy plaque"]},
                    "nevus": {"hi": ["symmetric reticular network"], "lo": ["round even brown spot"]},
                },
            }
        )
    )
    code, out, err = cli(*describe_args(fake_llm, fake_task, "--merge", str(existing), "--modalities", "lo"))
    assert code == 0, err
    assert out.strip() == str(existing)  # merged in place
    doc = json.loads(existing.read_text())
    assert doc["classes"]["seborrheic keratosis"] == {
        "hi": ["stuck-on waxy plaque"],
        "lo": ["brown waxy plaque"],
    }
    assert doc["classes"]["nevus"]["hi"] == ["symmetric reticular network"]  # not described: kept
    assert len(doc["classes"]["nevus"]["lo"]) == 5 and doc["classes"]["nevus"]["lo"][0].startswith("lesion ")
    assert set(doc["classes"]["melanoma"]) == {"lo"}
    assert doc["provenance"]["modalities"] == {"lo": "clinical photograph"}
    assert doc["provenance"]["merged"] == [old_prov]
    users = [r["body"]["messages"][1]["content"] for r in fake_llm.requests]
    assert all("clinical photograph" in u and "dermoscopy" not in u for u in users)
    # a second merge keeps the history flat, newest first
    code, _, err = cli(*describe_args(fake_llm, fake_task, "--merge", str(existing), "--modalities", "hi"))
    assert code == 0, err
    doc = json.loads(existing.read_text())
    assert [r.get("source", r.get("tool")) for r in doc["provenance"]["merged"]] == [
        "kmat describe",
        "hand-written",
    ]
    load_descriptions(existing, [*CLASSES, "seborrheic keratosis"])  # every class has both modalities now


def test_merge_task_starts_from_the_shipped_descriptions(fake_llm: Any, fake_task: str, keyed: Path) -> None:
    out_file = keyed / "out.json"
    args = describe_args(fake_llm, fake_task, "--merge-task", "--classes", "melanoma", "-o", str(out_file))
    code, _, err = cli(*args)
    assert code == 0, err
    doc = json.loads(out_file.read_text())
    assert doc["classes"]["nevus"] == {"hi": ["shipped nevus in hi"], "lo": ["shipped nevus in lo"]}
    assert len(doc["classes"]["melanoma"]["hi"]) == 5 and len(fake_llm.requests) == 2
    assert doc["provenance"]["merged"] == [{"source": "descriptions shipped with task 'fake'"}]
    load_descriptions(out_file, CLASSES)


def test_custom_template_is_sent_and_hashed(fake_llm: Any, fake_task: str, keyed: Path) -> None:
    template = keyed / "mine.md"
    template.write_text(
        "<!-- my notes -->\n## user\nList {{n}} looks of {{class_name}} ({{modality_key}}: {{modality}}; "
        'other: {{other_modality}}) as JSON {"descriptions": []}.\n'
    )
    out_file = keyed / "out.json"
    args = describe_args(fake_llm, fake_task, "--prompt-template", str(template), "-o", str(out_file))
    code, _, err = cli(*args)
    assert code == 0, err
    sent = {r["body"]["messages"][0]["content"] for r in fake_llm.requests}
    assert (
        'List 5 looks of melanoma (lo: clinical photograph; other: dermoscopy) as JSON {"descriptions": []}.'
        in sent
    )
    assert all(len(r["body"]["messages"]) == 1 for r in fake_llm.requests)  # no system section, no notes
    prov = json.loads(out_file.read_text())["provenance"]
    assert prov["prompt_template"] == "mine.md"
    assert prov["prompt_template_sha256"] == hashlib.sha256(template.read_bytes()).hexdigest()
    template.write_text("## user\nDescribe {{class}} please\n")
    code, _, err = cli(*describe_args(fake_llm, fake_task, "--prompt-template", str(template)))
    assert code == 2 and "unknown placeholder '{{class}}'" in err and str(template) in err


def test_usage_errors(fake_llm: Any, fake_task: str, keyed: Path) -> None:
    cases = [
        (["--modalities", "mid"], "unknown modality 'mid'"),
        (["--classes", "nevuss"], "unknown class 'nevuss'"),
        (["--temperature", "3"], "--temperature must be between 0 and 2"),
        (["--merge", str(keyed / "missing.json")], "missing.json: descriptions file not found"),
    ]
    for extra, message in cases:
        code, _, err = cli(*describe_args(fake_llm, fake_task, *extra))
        assert code == 2 and message in err, (extra, err)
    code, _, err = cli("describe", "--task", fake_task, "--base-url", "ftp://x/v1")
    assert code == 2 and "not an http(s) URL" in err
    assert fake_llm.requests == []


def test_openai_without_key_is_a_usage_error(fake_task: str, isolated: Path) -> None:
    code, _, err = cli("describe", "--task", fake_task)
    assert code == 2 and "OPENAI_API_KEY is not set" in err


def test_stdout_output_and_template_printing(fake_llm: Any, fake_task: str, keyed: Path) -> None:
    code, out, err = cli(*describe_args(fake_llm, fake_task, "-o", "-", "--classes", "nevus"))
    assert code == 0, err
    assert json.loads(out)["classes"]["nevus"]["lo"][0].startswith("lesion ")
    code, out, _ = cli("describe", "--show-template")
    assert code == 0 and "## user" in out and "{{class_name}}" in out


def test_installed_script_end_to_end(fake_llm: Any, fake_task: str, keyed: Path, kmat_exe: str) -> None:
    """The real `kmat` console script in a subprocess: success, then a bad key (exit 2, one line)."""
    fake_llm.api_key = KEY
    env = {**os.environ}
    out_file = keyed / "out.json"
    args = [kmat_exe, *describe_args(fake_llm, fake_task, "-o", str(out_file), "--classes", "nevus")]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert load_descriptions(out_file, ["nevus"])["lo"]["nevus"]
    env["OPENAI_API_KEY"] = "sk-wrong-SECRET"
    bad = subprocess.run([*args, "--no-cache"], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "rejected the API key (HTTP 401)" in bad.stderr
    assert "SECRET" not in bad.stderr + bad.stdout and len(bad.stderr.strip().splitlines()) == 1
