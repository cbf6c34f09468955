"""find_inputs: recursive, deterministic, hidden files and symlink loops skipped, explicit files kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faults import assert_error, cli, png, two_class_prompts
from PIL import Image

from kmat_cli.api import UsageError
from kmat_cli.predict import find_inputs

pytestmark = pytest.mark.usefixtures("no_progress")


def test_folder_walk_is_sorted_and_skips_hidden_loops_and_other_files(
    zoo: tuple[Path, dict[str, Any]],
) -> None:
    root, info = zoo
    files, skipped = find_inputs([root])
    assert [f.relative_to(root).as_posix() for f in files] == info["files"]
    assert skipped == info["skipped"]
    assert all(f.is_relative_to(root) for f in files)  # paths are the argument joined with the walk


def test_arguments_keep_their_order_and_explicit_files_are_always_inputs(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "b" / "x.png")
    (tmp_path / "notes.txt").write_text("explicitly given, so it gets a row")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")  # broken link: a row with its error
    files, _ = find_inputs([tmp_path / "notes.txt", tmp_path / "b", tmp_path / "gone.png"])
    assert files == [tmp_path / "notes.txt", tmp_path / "b" / "x.png", tmp_path / "gone.png"]


def test_link_to_a_folder_outside_is_followed_once(tmp_path: Path) -> None:
    outside, top = tmp_path / "outside", tmp_path / "top"
    outside.mkdir()
    top.mkdir()
    Image.new("RGB", (4, 4)).save(outside / "o.png")
    (top / "a-link").symlink_to(outside)
    (top / "b-link").symlink_to(outside)  # a second link to the same folder adds nothing
    (top / "self").symlink_to(top)
    files, _ = find_inputs([top])
    assert files == [top / "a-link" / "o.png"]


def test_missing_path_and_no_images_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"nope: no such file or folder"):
        find_inputs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("x")
    with pytest.raises(UsageError, match="no image files found"):
        find_inputs([tmp_path / "empty"])
    with pytest.raises(UsageError, match="at least one"):
        find_inputs([])


@pytest.mark.parametrize("content", ["nothing", "only-text-files", "only-hidden"])
def test_predict_on_a_folder_without_images(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    if content == "only-text-files":
        (folder / "notes.txt").write_text("x")
        (folder / "sub").mkdir()
        (folder / "sub" / "readme.md").write_text("x")
    elif content == "only-hidden":
        png(folder / ".hidden.png", 1)
    prompts = two_class_prompts(tmp_path)
    result = cli("predict", folder, "--embeddings", prompts, "--output", tmp_path / "p.csv")
    assert_error(result, folder, "no image files found")
    assert not (tmp_path / "p.csv").exists()
