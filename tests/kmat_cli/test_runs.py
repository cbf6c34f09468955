"""Run folders: numbered and never reused, an atomic status, one ``Run`` class from creation to the Python
API, only the files ``Run`` names, and a run folder accepted where a prompts file is expected."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest
from kmat_runner import cli

from kmat_cli import runs
from kmat_cli.errors import UsageError


def test_run_folders_are_numbered_and_never_reused(tmp_path: Path) -> None:
    first = runs.create(tmp_path, "train", "chest", "kmat")
    second = runs.create(tmp_path, "train", "chest", "kmat")
    other = runs.create(tmp_path, "train", "chest", "coop")
    assert first.path == tmp_path / "train" / "chest-kmat-1"
    assert second.path.name == "chest-kmat-2" and other.path.name == "chest-coop-1"
    (tmp_path / "train" / "chest-kmat-7").mkdir()
    assert runs.create(tmp_path, "train", "chest", "kmat").path.name == "chest-kmat-8"


def test_task_given_as_yaml_path_is_slugged(tmp_path: Path) -> None:
    run = runs.create(tmp_path, "train", "/data/my tasks/derm.yaml", "kmat")
    assert run.path.name == "derm-kmat-1"


def _claim(root: str) -> str:
    return runs.create(root, "train", "phantom", "kmat").path.name


@pytest.mark.spawns
def test_concurrent_creation_gives_distinct_folders(tmp_path: Path) -> None:
    with mp.get_context("spawn").Pool(4) as pool:
        names = pool.map(_claim, [str(tmp_path)] * 8)
    assert len(set(names)) == 8


def test_status_is_atomic_and_finished_only_when_marked(tmp_path: Path) -> None:
    run = runs.create(tmp_path, "train", "t", "m")
    assert not run.finished and run.status == "created"
    run.mark("running")
    assert not runs.open_run(run.path).finished
    run.mark("finished", epochs=3)
    reopened = runs.open_run(run.path)
    assert reopened.finished and reopened.record["epochs"] == 3
    assert not list(run.path.glob(".*.tmp"))


def test_one_run_class_from_creation_to_the_python_api(tmp_path: Path) -> None:
    import kmat

    run = runs.create(tmp_path, "train", "t", "m")
    run.mark("finished", epochs=3)
    reopened = kmat.Run(str(run.path))  # text or a Path: the same folder, the same class
    assert kmat.Run is runs.Run and reopened == run == kmat.Run(run.path)
    assert reopened.status == "finished" and reopened.record["epochs"] == 3
    assert reopened.metrics is None and reopened.history == []


def test_open_run_rejects_other_folders(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a kmat run folder"):
        runs.open_run(tmp_path)


def test_unwritable_out_root_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="cannot create output folder"):
        runs.create(blocker, "train", "t", "m")


def test_every_file_of_a_finished_run_is_named_by_run(phantom_run: Path) -> None:
    """Run owns the run-folder file names: a trained and evaluated run holds only files that a ``Run``
    constant names (and the checkpoint's tensor file, which checkpoint.json names)."""
    from kmat_cli.runs import Run

    names = {p.name for p in phantom_run.iterdir() if not p.name.startswith("checkpoint-")}
    constants = {value for key, value in vars(Run).items() if key.isupper()}
    assert names <= constants, names - constants
    core = {Run.STATUS, Run.LOCK, Run.CONFIG, Run.ENV, Run.HISTORY, Run.METRICS, Run.CHECKPOINT, Run.PROMPTS}
    assert core <= names, core - names
    assert [p.name for p in phantom_run.glob("checkpoint-*")] == ["checkpoint-0001.safetensors"]


# ------------------------------------------------------------------ 6. a run folder as --embeddings
def test_a_run_folder_is_accepted_where_a_prompts_file_is_expected(
    phantom_run: Path, phantom_prompts: Path, tmp_path: Path, capsys
) -> None:
    import kmat

    images = phantom_prompts.parent / "images"
    code, by_folder, stderr = cli("predict", images, "--embeddings", phantom_run)
    _, by_run, _ = cli("predict", images, "--run", phantom_run)
    assert code == 0 and by_folder == by_run, stderr
    prompts = kmat.load_prompts(str(phantom_run))
    same = kmat.load_prompts(phantom_run / "prompts.safetensors")
    assert prompts.class_names == same.class_names
    assert all((prompts.embeddings[m] == same.embeddings[m]).all() for m in ("hi", "lo"))
    code, _, stderr = cli("predict", images, "--embeddings", tmp_path)
    assert code == 2 and "a folder, not a prompts file" in stderr
