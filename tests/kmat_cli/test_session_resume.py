"""``kmat train --resume`` (``kmat.train(resume=...)``): options that would change the run are refused,
``--device`` continues it elsewhere to the same result, and a run in use by another process is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from faults import SHORT, assert_error, cli, run_folders, status, tensors_equal
from kmat_runner import interrupted_run

from kmat_cli import runs, train

pytestmark = pytest.mark.usefixtures("no_progress")


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


def test_a_resumed_run_keeps_its_folder_and_resume_refuses_other_options(
    phantom_run: Path, capsys: pytest.CaptureFixture
) -> None:
    assert phantom_run.name == "phantom-coop-s3-1"
    code, stdout, _ = cli("train", "--resume", phantom_run)
    assert code == 0 and stdout == f"{phantom_run}\n"
    code, _, stderr = cli("train", "--resume", phantom_run, "--seed", "4")
    assert code == 2 and "--resume" in stderr
