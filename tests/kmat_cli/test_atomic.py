"""Atomic file writes (kmat_cli/atomic.py): a failed writer leaves the old file, no NaN in JSON, the mode a
plain ``open`` gives, and user-named special destinations (a FIFO, a device, stdout as a pipe, links) written
through, never replaced."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from faults import env, fifo_reader
from safetensors.torch import load, save_file

from kmat_cli import atomic


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path: Path) -> None:
    dest = tmp_path / "m.json"
    atomic.write_json(dest, {"a": 1})

    def failing(tmp: Path) -> None:
        tmp.write_text('{"a": ')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.write_with(dest, failing)
    assert json.loads(dest.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_atomic_json_rejects_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        atomic.write_json(tmp_path / "x.json", {"a": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_atomic_files_get_the_mode_plain_open_gives(tmp_path: Path) -> None:

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic.write_text(tmp_path / "atomic.txt", "x")
    atomic.write_with(tmp_path / "written.bin", lambda p: p.write_bytes(b"x"))
    want = plain.stat().st_mode & 0o777
    assert (tmp_path / "atomic.txt").stat().st_mode & 0o777 == want
    assert (tmp_path / "written.bin").stat().st_mode & 0o777 == want
    assert not list(tmp_path.glob(".*.tmp"))
    assert want == 0o666 & ~_umask()


def test_atomic_writes_stream_into_a_fifo(tmp_path: Path) -> None:
    """A user-named FIFO destination is opened and written, not replaced by a regular file (text and safetensors)."""
    fifo = tmp_path / "pipe"
    with fifo_reader(fifo) as got:
        atomic.write_json(fifo, {"a": 1}, user_named=True)
    assert json.loads(got[0]) == {"a": 1} and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    fifo.unlink()
    tensors = {"x": torch.arange(6, dtype=torch.float32).reshape(2, 3)}
    with fifo_reader(fifo) as got:
        atomic.write_with(fifo, lambda tmp: save_file(tensors, str(tmp)), user_named=True)
    assert torch.equal(load(got[0])["x"], tensors["x"]) and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temporary file left


def test_atomic_writes_through_a_link_to_a_device(tmp_path: Path) -> None:
    """A user-named link to /dev/null: the link stays, the device stays a device (written through, never replaced)."""
    link = tmp_path / "null"
    link.symlink_to(os.devnull)
    atomic.write_text(link, "discarded\n", user_named=True)
    assert link.is_symlink() and os.readlink(link) == os.devnull
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_atomic_writes_through_a_link_to_stdout_as_a_pipe(tmp_path: Path) -> None:
    """A link to ``/proc/self/fd/1`` (what ``/dev/stdout`` is) while stdout is a pipe: the content goes
    down the pipe, the link stays."""
    link = tmp_path / "stdout"
    link.symlink_to("/proc/self/fd/1")
    code = f"from kmat_cli import atomic; atomic.write_json({str(link)!r}, {{'a': 1}}, user_named=True)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"a": 1} and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stdout"]


def test_atomic_writes_replace_a_links_target(tmp_path: Path) -> None:
    """A user-named link (also a chain of two, and a dangling one): the link stays a link, its target gets the new
    content atomically (the old content until the rename)."""
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "report.json"
    target.write_text("old")
    link, chain = tmp_path / "report.json", tmp_path / "chain.json"
    link.symlink_to(target)
    chain.symlink_to(link)
    atomic.write_json(link, {"v": 1}, user_named=True)
    assert link.is_symlink() and json.loads(target.read_text()) == {"v": 1}
    atomic.write_json(chain, {"v": 2}, user_named=True)
    assert chain.is_symlink() and link.is_symlink() and json.loads(target.read_text()) == {"v": 2}
    dangling = tmp_path / "new.json"
    dangling.symlink_to(tmp_path / "real" / "created.json")
    atomic.write_json(dangling, {"v": 3}, user_named=True)
    assert dangling.is_symlink() and json.loads((tmp_path / "real" / "created.json").read_text()) == {"v": 3}
    assert not list(tmp_path.rglob(".*.tmp"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
