"""A run config with a value of the wrong type or out of range, or an unknown key (in a --config file, a
--set flag or an option) is one line naming the key, exit 2, and no run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from faults import SHORT, assert_error, assert_no_runs, cli

pytestmark = pytest.mark.usefixtures("no_progress")


# ----------------------------------------------------------------------------------------- wrong-typed YAML
WRONG_TYPED_CONFIG = [
    ("train: {epochs: ten}", "train.epochs"),
    ("train: {lr: [0.1]}", "train.lr"),
    ("train: {amp: 'yes'}", "train.amp"),
    ("train: 5", "'train'"),
    ("train: {shots: 2.5}", "train.shots"),
    ("train: {seed: null}", "train.seed"),
    ("train: {lr: .nan}", "train.lr"),
    ("train: {warmup_lr: -.inf}", "train.warmup_lr"),
    ("train: {epochs: -3}", "train.epochs"),
    ("train: {batch_size: 0}", "train.batch_size"),
    ("train: {lr: -0.1}", "train.lr"),
    ("train: {optimizer: adamw}", "train.optimizer"),
    ("train: {scheduler: step}", "train.scheduler"),
    ("train: {device: 7}", "train.device"),
    ("method: [kmat]", "'method'"),
    ("method: {name: kmat, lambda1: big}", "method.lambda1"),
    ("method: {name: kmat, lambda1: null}", "method.lambda1"),
    ("transport: {name: fgw, epsilon: true}", "transport.epsilon"),
    ("transport: {name: 3}", "transport.name"),
    ("descriptions: 5", "'descriptions'"),
    ("out: [runs]", "'out'"),
]


@pytest.mark.parametrize(("text", "key"), WRONG_TYPED_CONFIG)
def test_wrong_typed_config_values_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no --out flag: it would replace the file's own `out`
    (tmp_path / "c.yaml").write_text(text + "\n", encoding="utf-8")
    result = cli("train", "--config", tmp_path / "c.yaml", "--no-evaluate")
    assert_error(result, key)
    assert_no_runs(tmp_path / "runs")


# ----------------------------------------------------------------------------------------- unknown-key YAML
UNKNOWN_CONFIG_KEYS = [
    ("trian: {epochs: 2}", "'trian' (did you mean 'train'?)"),
    ("train: {epoch: 2}", "'train.epoch' (did you mean 'epochs'?)"),
    ("method: {name: kmat, lamda1: 2}", "'method.lamda1'"),
    ("transport: {name: fgw, eps: 0.1}", "'transport.eps'"),
    ("backbone: {name: phantom, weight: x}", "'backbone.weight'"),
    ("task: {name: phantom, sed: 1}", "'task.sed'"),
]


@pytest.mark.parametrize(("text", "needle"), UNKNOWN_CONFIG_KEYS)
def test_unknown_config_keys_are_refused_with_a_suggestion(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "c.yaml").write_text(text + "\n", encoding="utf-8")
    result = cli("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "runs", "--no-evaluate")
    assert_error(result, needle)
    assert_no_runs(tmp_path / "runs")


@pytest.mark.parametrize(
    ("sets", "needle"), [("train.epoc=3", "'train.epoc'"), ("mehtod.name=coop", "'mehtod'")]
)
def test_unknown_set_keys_are_refused(tmp_path: Path, sets: str, needle: str) -> None:
    result = cli("train", "--set", sets, "--out", tmp_path / "runs", "--no-evaluate")
    assert_error(result, needle)


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
    assert_no_runs(out)
