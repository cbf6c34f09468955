"""The phantom backbone's files are written through kmat's atomic writer: each file complete or absent,
shareable permissions (0666 minus the umask, as a plain ``open`` gives), a link at a destination replaced and
never written through, no temporary file left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from kmat.backbones.phantom.pretrain import write_files


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write(name: str, text: str) -> tuple[str, object]:
    return name, lambda path: Path(path).write_text(text, encoding="utf-8")


def test_files_are_complete_shareable_and_leave_no_temporaries(tmp_path: Path) -> None:
    out = tmp_path / "new" / "backbone"
    write_files(out, dict([_write("config.json", "{}\n"), _write("vocab.json", "[]\n")]))
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "vocab.json"]
    assert (out / "config.json").read_text(encoding="utf-8") == "{}\n"
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask(), path


def test_a_link_at_a_destination_is_replaced_and_its_target_untouched(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("theirs\n", encoding="utf-8")
    out = tmp_path / "backbone"
    out.mkdir()
    (out / "config.json").symlink_to(elsewhere)
    write_files(out, dict([_write("config.json", "ours\n")]))
    assert not (out / "config.json").is_symlink()
    assert (out / "config.json").read_text(encoding="utf-8") == "ours\n"
    assert elsewhere.read_text(encoding="utf-8") == "theirs\n"


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    out = tmp_path / "backbone"
    write_files(out, dict([_write("config.json", "old\n")]))

    def fail(path: Path) -> None:
        Path(path).write_text("half", encoding="utf-8")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_files(out, {"config.json": fail})
    assert [p.name for p in out.iterdir()] == ["config.json"]
    assert (out / "config.json").read_text(encoding="utf-8") == "old\n"
