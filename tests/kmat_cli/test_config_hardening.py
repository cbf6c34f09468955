"""Config, CLI options and run folders under hostile or careless input: YAML that expands or nests without
bound, repeated keys, numbers in scientific notation, options out of range, a resume given other options,
two processes on one run, a run folder deleted mid-run, an unwritable home and a damaged hash memo.

Every bad input is one ``kmat: error:`` line naming it, exit code 2, and no run folder; a run that loses its
folder is a failure (exit 1), never a folder recreated and marked finished.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from faults import (
    PHANTOM,
    assert_error,
    cli,
    custom_task,
    phantom_root,
    run_folders,
    session_cache,
    status,
    tensors_equal,
)
from kmat_runner import interrupted_run

from kmat_cli import runs, train
from kmat_cli.features import HASH_MEMO

pytestmark = pytest.mark.usefixtures("no_progress")

# A short phantom run: 2 shots x 8 classes, one thread, 2 epochs, no evaluation.
SHORT = [*PHANTOM, "--epochs", "2", "--no-evaluate"]


def _bomb(levels: int = 9) -> str:
    """A "billion laughs" YAML flow list: anchor ``l0`` holds nine strings, each ``l<i>`` nine aliases of
    ``l<i-1>`` (9 ** levels strings once expanded, from a few hundred bytes)."""
    items = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    items += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return f"[{', '.join(items)}]"


def _no_runs(out: Path) -> None:
    assert not run_folders(out), f"a refused command left run folders: {run_folders(out)}"


# ---------------------------------------------------------------------------------------- unbounded YAML
@pytest.mark.parametrize("where", ["config", "task", "set", "grid"])
def test_yaml_alias_bomb_is_refused_at_once(tmp_path: Path, where: str) -> None:
    """Anchors and aliases are refused wherever user YAML is read, before anything is expanded."""
    out = tmp_path / "runs"
    if where == "config":
        source = tmp_path / "bomb.yaml"
        source.write_text(f"train:\n  lr: {_bomb()}\n", encoding="utf-8")
        args = ["train", "--config", source, "--out", out]
    elif where == "task":
        source = custom_task(tmp_path / "task", per_split={"train": 2})
        text = source.read_text(encoding="utf-8")
        source.write_text(f"{text}config:\n  train:\n    lr: {_bomb()}\n", encoding="utf-8")
        args = ["train", "--task", source, "--out", out]
    elif where == "set":
        source = "--set"
        args = ["train", "--set", f"train.lr={_bomb()}", "--out", out]
    else:
        source = "--grid"
        args = ["tune", "--grid", f"method.lambda1={_bomb()}", "--out", out]
    started = time.perf_counter()
    result = cli(*args)
    seconds = time.perf_counter() - started
    line = assert_error(result, source, "anchors and aliases")
    assert len(line) < 400, f"the error line is {len(line)} characters"
    assert seconds < 2, f"refusing the alias bomb took {seconds:.1f} s"
    _no_runs(out)


def test_deeply_nested_yaml_is_refused_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "deep.yaml"
    config.write_text("train: " + "[" * 10_000 + "]" * 10_000 + "\n", encoding="utf-8")
    assert_error(cli("train", "--config", config, "--out", tmp_path / "runs"), config, "nested")
    _no_runs(tmp_path / "runs")


def test_a_huge_value_is_shown_shortened_in_the_error(tmp_path: Path) -> None:
    config = tmp_path / "big.yaml"
    config.write_text("train: {lr: [" + ", ".join(["123456789"] * 1_000) + "]}\n", encoding="utf-8")
    line = assert_error(cli("train", "--config", config, "--out", tmp_path / "runs"), "train.lr")
    assert len(line) < 400, f"the error line is {len(line)} characters"
    _no_runs(tmp_path / "runs")


@pytest.mark.parametrize("where", ["config", "task"])
def test_a_key_given_twice_is_refused_naming_key_and_file(tmp_path: Path, where: str) -> None:
    if where == "config":
        source = tmp_path / "dup.yaml"
        source.write_text("train:\n  epochs: 1\n  shots: 2\n  epochs: 3\n", encoding="utf-8")
        args = ["train", "--config", source]
    else:
        source = custom_task(tmp_path / "task")
        source.write_text(source.read_text(encoding="utf-8") + "name: other\n", encoding="utf-8")
        args = ["train", "--task", source]
    line = assert_error(cli(*args, "--out", tmp_path / "runs"), source, "given twice")
    assert ("'epochs'" if where == "config" else "'name'") in line
    _no_runs(tmp_path / "runs")


# ------------------------------------------------------------------------------- floats written as 1e-3
def test_scientific_notation_is_a_float_in_set_and_in_config_files(tmp_path: Path) -> None:
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; a float key takes it as the number."""
    config = tmp_path / "c.yaml"
    config.write_text("train: {warmup_lr: 2e-6}\ntransport: {name: fgw, alpha: 5E-1}\n", encoding="utf-8")
    out = tmp_path / "runs"
    result = cli(
        "train", *PHANTOM, "--epochs", "1", "--no-evaluate", "--out", out, "--config", config,
        "--set", "train.lr=1e-3", "--set", "transport.epsilon=5e-2", "--set", "method.lambda1=1E3",
    )  # fmt: skip
    assert result.code == 0, result.err
    [run] = run_folders(out)
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert saved["train"]["lr"] == 1e-3 and isinstance(saved["train"]["lr"], float)
    assert saved["train"]["warmup_lr"] == 2e-6
    assert saved["transport"]["epsilon"] == 5e-2 and saved["transport"]["alpha"] == 0.5
    assert saved["method"]["lambda1"] == 1000.0
    # an int key does not take a float
    assert_error(cli("train", "--set", "train.epochs=1e3", "--out", tmp_path / "bad"), "train.epochs")
    _no_runs(tmp_path / "bad")


# ------------------------------------------------------------------------- options checked before a folder
BAD_OPTIONS = [
    (["--set", "train.eval_batch_size=0"], "train.eval_batch_size"),
    (["--set", "train.eval_batch_size=-3"], "train.eval_batch_size"),
    (["--set", "train.augment_views=-1"], "train.augment_views"),
    (["--set", "train.num_workers=-2"], "train.num_workers"),
    (["--set", "train.threads=-1"], "train.threads"),
    (["--seed", str(2**63)], "train.seed"),
    (["--seed", "-1"], "train.seed"),
    (["--device", "meta"], "train.device"),
    (["--device", "mps"], "'mps'"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_options_fail_before_the_run_folder_exists(tmp_path: Path, args: list[str], needle: str) -> None:
    if args == ["--device", "mps"] and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    out = tmp_path / "runs"
    assert_error(cli("train", *SHORT, *args, "--out", out), needle)
    _no_runs(out)


# -------------------------------------------------------------------------------------------- --resume
def _interrupted(out: Path, monkeypatch: pytest.MonkeyPatch, *extra: str) -> Path:
    """A run killed (Ctrl-C) right after its epoch-1 checkpoint of 2: it says ``interrupted``."""
    run, _ = interrupted_run(out, monkeypatch, *SHORT, *extra)
    assert status(run) == "interrupted"
    return run


REFUSED_WITH_RESUME = [
    ["--epochs", "3"],
    ["--seed", "2"],
    ["--shots", "4"],
    ["--set", "train.lr=0.1"],
    ["--task", "phantom"],
    ["--method", "coop"],
    ["--transport", "none"],
    ["--backbone", "phantom"],
    ["--config", "c.yaml"],
    ["--descriptions", "d.json"],
    ["--out", "elsewhere"],
]


def test_resume_refuses_options_that_would_change_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _interrupted(tmp_path / "runs", monkeypatch)
    config = (run / "config.yaml").read_bytes()
    for args in REFUSED_WITH_RESUME:
        line = assert_error(cli("train", "--resume", run, *args), args[0], "saved config.yaml")
        assert str(run) in line
    both = assert_error(cli("train", "--resume", run, "--epochs", "3", "--set", "train.lr=0.1"))
    assert "--epochs" in both and "--set" in both
    assert status(run) == "interrupted" and (run / "config.yaml").read_bytes() == config
    assert run_folders(tmp_path / "runs") == [run]


def test_resume_on_another_device_continues_to_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--device`` is the one option a resume takes: the run continues where it stopped, on that device,
    to the prompts of an uninterrupted run; config.yaml keeps what the run was started with."""
    run = _interrupted(tmp_path / "cut", monkeypatch, "--device", "auto")
    config = (run / "config.yaml").read_bytes()
    if not torch.backends.mps.is_available():  # the device given is the one used: checked, then refused
        assert_error(cli("train", "--resume", run, "--device", "mps", "--no-evaluate"), "'mps'")
        assert status(run) == "interrupted"
    result = cli("train", "--resume", run, "--device", "cpu", "--no-evaluate")
    assert result.code == 0, result.err
    assert status(run) == "finished"
    assert (run / "config.yaml").read_bytes() == config
    reference = cli("train", *SHORT, "--device", "cpu", "--out", tmp_path / "whole")
    assert reference.code == 0, reference.err
    [whole] = run_folders(tmp_path / "whole")
    assert not tensors_equal(run / "prompts.safetensors", whole / "prompts.safetensors")


def test_a_run_in_use_cannot_be_resumed_by_a_second_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a run trains, ``kmat train --resume`` of it is refused (exit 2, the run untouched); once the
    holder ends, the resume goes ahead."""
    run = _interrupted(tmp_path / "runs", monkeypatch)
    checkpoint = (run / "checkpoint.json").read_bytes()
    with runs.Run(run).in_use():  # what a training process holds, here held by this one
        result = cli("train", "--resume", run, "--no-evaluate")
    assert_error(result, run, "in use")
    assert status(run) == "interrupted" and (run / "checkpoint.json").read_bytes() == checkpoint
    assert cli("train", "--resume", run, "--no-evaluate").code == 0
    assert status(run) == "finished"


def test_a_training_run_holds_its_folder_from_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resume started while the original run is still training (after its first epoch) is refused."""
    real, seen = train.Trainer.save, []

    def save(self: train.Trainer) -> None:
        real(self)
        if self.epoch == 1:
            seen.append(cli("train", "--resume", self.folder, "--no-evaluate"))

    monkeypatch.setattr(train.Trainer, "save", save)
    result = cli("train", *SHORT, "--out", tmp_path / "runs")
    assert result.code == 0, result.err
    [run] = run_folders(tmp_path / "runs")
    assert_error(seen[0], run, "in use")
    assert status(run) == "finished"


# ------------------------------------------------------------------------------- a run folder that vanishes
@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_run_folder_deleted_during_training_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Deleting (or replacing) the run folder after the first epoch: exit 1 naming the folder, and the
    folder is not recreated (nor does the replacement get any of the run's files)."""
    real = train.Trainer.save

    def save(self: train.Trainer) -> None:
        real(self)
        if self.epoch == 1:
            shutil.rmtree(self.folder)
            if how == "replaced":
                self.folder.mkdir()

    monkeypatch.setattr(train.Trainer, "save", save)
    out = tmp_path / "runs"
    result = cli("train", *SHORT, "--out", out)
    folder = out / "train" / "phantom-kmat-s1-1"
    assert_error(result, folder, "vanished during training", code=1, notes=True)
    if how == "deleted":
        assert not folder.exists(), f"the run folder was recreated: {sorted(folder.iterdir())}"
    else:
        assert sorted(folder.iterdir()) == []


# ---------------------------------------------------------------------------------------- the kmat cache
@pytest.mark.parametrize("phantom", ["generated", "given"])
def test_an_unwritable_home_says_to_set_kmat_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, phantom: str
) -> None:
    """No KMAT_CACHE and a home where no cache folder can be made (HOME is a file): exit 2 saying so, for
    the phantom world's folder and for the feature cache (the world given elsewhere)."""
    extra = ["--set", f"task.root={phantom_root()}"] if phantom == "given" else []
    home = tmp_path / "home"
    home.write_text("not a folder\n", encoding="utf-8")
    monkeypatch.delenv("KMAT_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    result = cli("train", *SHORT, "--out", tmp_path / "runs", *extra)
    assert_error(result, home, "set KMAT_CACHE")
    _no_runs(tmp_path / "runs")


def test_a_phantom_world_in_a_read_only_folder_is_a_usage_error(tmp_path: Path, read_only: Any) -> None:
    """A world that must be generated where nothing can be written: exit 2 naming the folder."""
    root = read_only(tmp_path / "worlds")
    result = cli("train", *SHORT, "--out", tmp_path / "runs", "--set", f"task.root={root}")
    assert_error(result, root, "set KMAT_CACHE")
    _no_runs(tmp_path / "runs")


@pytest.mark.parametrize("memo", ["[]", "null", '"text"'])
def test_a_damaged_hash_memo_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memo: str) -> None:
    """The hash memo is an optimisation: one holding JSON of the wrong shape is read as empty and rewritten."""
    world, cache = phantom_root(), tmp_path / "cache"
    shutil.copytree(session_cache() / "features", cache / "features")  # no image is encoded again
    (cache / HASH_MEMO).write_text(memo, encoding="utf-8")
    monkeypatch.setenv("KMAT_CACHE", str(cache))
    out = tmp_path / "runs"
    result = cli("train", *SHORT, "--out", out, "--set", f"task.root={world}")
    assert result.code == 0, result.err
    [run] = run_folders(out)
    assert status(run) == "finished"
    rewritten = json.loads((cache / HASH_MEMO).read_text(encoding="utf-8"))
    assert isinstance(rewritten, dict) and len(rewritten) == 16, rewritten  # 2 shots x 8 classes
