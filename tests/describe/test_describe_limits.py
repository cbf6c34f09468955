"""`kmat describe --timeout` bounds the whole answer, not each read, and answers have a size limit: a server
that trickles bytes or sends 100 MB fails fast with one line, and nothing of it reaches the request cache."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from test_describe_cli import describe_args, kmat

MAX_ANSWER_BYTES = 8 << 20  # the documented limit (kmat_cli.describe.chat.MAX_ANSWER_BYTES)


def _cache_files(root: Path) -> list[Path]:
    return [p for p in (root / "cache" / "describe").rglob("*") if p.is_file()]


def test_a_trickling_server_is_cut_off_after_the_timeout(
    fake_llm: Any, fake_task: str, isolated: Path, capsys: pytest.CaptureFixture
) -> None:
    fake_llm.trickle = 0.5  # one byte every 0.5 s: each read is quick, the answer would take minutes
    args = describe_args(fake_llm, fake_task, "--timeout", "2", "--max-retries", "0", "--classes", "nevus")
    code, _out, err = kmat(capsys, *args, "--modalities", "hi", "--output", str(isolated / "d.json"))
    seconds = time.monotonic() - fake_llm.requests[0]["time"]  # from the request, not counting start-up
    assert code == 1, err
    assert 1.9 < seconds < 4.0, f"{seconds:.1f} s"
    [line] = err.strip().splitlines()
    assert line.startswith("kmat: error: ") and "no answer within 2 s after 1 tries" in line
    assert not (isolated / "d.json").exists() and not _cache_files(isolated)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "until-close"])
def test_a_huge_answer_fails_fast_and_is_never_cached(
    fake_llm: Any, fake_task: str, isolated: Path, capsys: pytest.CaptureFixture, declared: bool
) -> None:
    fake_llm.padding, fake_llm.declare_length = 100 << 20, declared  # a valid JSON answer + 100 MB of spaces
    args = describe_args(fake_llm, fake_task, "--max-retries", "3", "--classes", "nevus")
    start = time.monotonic()
    code, _out, err = kmat(capsys, *args, "--modalities", "hi", "--output", str(isolated / "d.json"))
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
    code, _, err = kmat(capsys, *args, "--output", str(isolated / "d.json"))
    assert code == 0, err
    assert (isolated / "d.json").is_file() and len(_cache_files(isolated)) == len(fake_llm.requests)
