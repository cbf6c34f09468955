"""Files kmat owns (the cache, run folders, lock files) are never written or read through a link.

Someone sharing a KMAT_CACHE or a run folder plants symbolic links at the names kmat writes; through the
real commands, the files the links point to (the "victim's" files) must stay byte-identical, the link
itself is replaced by kmat's file (one warning naming it), and a linked folder inside a kmat folder is
refused with one line, exit code 2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from faults import assert_error, cli, custom_task, run_folders, train_args

from kmat_cli import atomic

pytestmark = pytest.mark.usefixtures("no_progress")

VICTIM_TEXT = "export PATH=$HOME/bin:$PATH  # the victim's own file\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of another user that a planted link points to."""
    path = tmp_path / "victim" / ".bashrc"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    return path


@pytest.fixture
def task(tmp_path: Path) -> Path:
    return custom_task(tmp_path / "task", per_split={"train": 2, "test": 1})


def _plant(link: Path, target: Path) -> Path:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(target)
    return link


def _assert_replaced(link: Path, err: str) -> None:
    """``link`` is now kmat's own regular file, and a warning said that the link was replaced."""
    assert not link.is_symlink() and link.is_file(), link
    assert f"{link}: was a symbolic link" in err, err


def test_a_link_planted_at_the_hash_memo_is_replaced(
    tmp_path: Path, fresh_cache: Path, task: Path, victim: Path
) -> None:
    memo = _plant(fresh_cache / "file-hashes.json", victim)
    dangling = tmp_path / "victim" / "authorized_keys"
    result = cli(*train_args(task, tmp_path / "runs"))
    assert result.code == 0, result.err
    assert victim.read_text() == VICTIM_TEXT
    _assert_replaced(memo, result.err)
    assert isinstance(json.loads(memo.read_text()), dict)
    # a dangling link is not followed either: its target is never created
    _plant(memo, dangling)
    result = cli(*train_args(task, tmp_path / "runs2", "--shots", "1"))
    assert result.code == 0, result.err
    assert not dangling.exists()


def test_links_at_cache_entries_are_neither_read_nor_written(
    tmp_path: Path, fresh_cache: Path, task: Path, victim: Path
) -> None:
    """info.json and a shard replaced by links (the shard's features then recomputed): every victim file
    unchanged, the links replaced."""
    assert cli(*train_args(task, tmp_path / "runs")).code == 0
    [folder] = list((fresh_cache / "features").iterdir())
    shards = list(folder.glob("*.safetensors"))
    shard_bytes = {s: s.read_bytes() for s in shards}
    for shard in shards:  # the victim's "shard" is a copy of a real one: reading it would be a hit
        stolen = tmp_path / "victim" / shard.name
        stolen.write_bytes(shard_bytes[shard])
        _plant(shard, stolen)
    info = _plant(folder / "info.json", victim)
    result = cli(*train_args(task, tmp_path / "runs2"))
    assert result.code == 0, result.err
    assert victim.read_text() == VICTIM_TEXT
    _assert_replaced(info, result.err)
    new = [s for s in folder.glob("*.safetensors") if not s.is_symlink()]
    assert new, "the features were not computed again: a linked shard was read"
    for shard in shards:
        assert (tmp_path / "victim" / shard.name).read_bytes() == shard_bytes[shard]


def test_a_linked_folder_in_the_cache_is_refused(
    tmp_path: Path, fresh_cache: Path, task: Path, victim: Path
) -> None:
    fresh_cache.mkdir()
    _plant(fresh_cache / "features", victim.parent)
    result = cli(*train_args(task, tmp_path / "runs"))
    assert_error(result, fresh_cache / "features", "symbolic link")
    assert sorted(p.name for p in victim.parent.iterdir()) == [".bashrc"]


def test_links_in_a_run_folder_are_replaced_by_evaluate_and_export(
    tmp_path: Path, task: Path, victim: Path
) -> None:
    assert cli(*train_args(task, tmp_path / "runs")).code == 0
    [run] = run_folders(tmp_path / "runs")
    metrics = _plant(run / "metrics.json", victim)
    result = cli("evaluate", run)
    assert result.code == 0, result.err
    _assert_replaced(metrics, result.err)
    prompts = _plant(run / "prompts.safetensors", victim)
    result = cli("export", run)
    assert result.code == 0, result.err
    _assert_replaced(prompts, result.err)
    assert victim.read_text() == VICTIM_TEXT


def test_a_link_at_the_lock_file_is_replaced_on_resume(tmp_path: Path, task: Path, victim: Path) -> None:
    assert cli(*train_args(task, tmp_path / "runs")).code == 0
    [run] = run_folders(tmp_path / "runs")
    lock = _plant(run / ".lock", tmp_path / "victim" / "created-by-kmat")
    status = _plant(run / "run.json", victim)
    result = cli("train", "--resume", run, "--no-evaluate")
    assert result.code == 0, result.err
    assert not (tmp_path / "victim" / "created-by-kmat").exists()
    assert not lock.is_symlink()
    _assert_replaced(status, result.err)
    assert victim.read_text() == VICTIM_TEXT


def test_a_link_in_the_describe_request_cache_is_a_miss_and_replaced(
    tmp_path: Path,
    fresh_cache: Path,
    chat_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    task: Path,
    victim: Path,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", chat_server.key)
    args = ["describe", "--task", task, "-n", "3", "--base-url", chat_server.base_url, "--model", "m"]
    assert cli(*args, "--output", tmp_path / "d1.json").code == 0
    entries = sorted((fresh_cache / "describe").glob("*.json"))
    assert entries
    for entry in entries:
        _plant(entry, victim)
    asked = len(chat_server.headers)
    result = cli(*args, "--output", tmp_path / "d2.json")
    assert result.code == 0, result.err
    assert len(chat_server.headers) > asked  # linked entries were misses, asked again
    assert victim.read_text() == VICTIM_TEXT
    for entry in entries:
        _assert_replaced(entry, result.err)


def test_a_linked_phantom_world_is_refused(tmp_path: Path, victim: Path) -> None:
    from kmat_cli.errors import UsageError
    from kmat_cli.registry import get

    phantom = get("tasks", "phantom")(root=str(tmp_path / "worlds"))
    _plant(phantom.folder, victim.parent)
    with pytest.raises(UsageError, match="symbolic link"):
        phantom.split("hi", "train")


def test_owned_writes_replace_links_fifos_and_refuse_linked_folders(tmp_path: Path, victim: Path) -> None:
    """The mechanism itself: a link or a FIFO at an owned name is replaced, a linked folder refused; a
    read never follows a link."""
    root = tmp_path / "owned"
    atomic.own(root)
    link = _plant(root / "state.json", victim)
    with pytest.raises(FileNotFoundError):
        atomic.read_owned(link)
    atomic.write_json(link, {"v": 1})
    assert json.loads(link.read_text()) == {"v": 1} and not link.is_symlink()
    fifo = root / "pipe.json"
    os.mkfifo(fifo)
    atomic.write_json(fifo, {"v": 2})  # would block forever if it were opened as a FIFO
    assert json.loads(fifo.read_text()) == {"v": 2}
    _plant(root / "sub", victim.parent)
    with pytest.raises(atomic.UsageError, match="symbolic link"):
        atomic.write_json(root / "sub" / "x.json", {"v": 3})
    assert sorted(p.name for p in victim.parent.iterdir()) == [".bashrc"]
    assert victim.read_text() == VICTIM_TEXT
