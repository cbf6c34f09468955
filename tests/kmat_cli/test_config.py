from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import yaml
from faults import PHANTOM, assert_error, assert_no_runs, cli, run_folders

from kmat_cli import config
from kmat_cli.errors import UsageError


class FakeTransport:
    """A transport with two options."""

    def __init__(self, *, epsilon: float = 0.1, cost: str = "sqeuclidean", device: str = "cpu") -> None:
        pass


class FakeTask:
    config: ClassVar[dict] = {"train": {"epochs": 7}}

    def __init__(self, *, root: str | None = None) -> None:
        pass


class OtherTask:
    config: ClassVar[dict] = {"train": {"epochs": 3, "shots": 2}}


class FakeMethod:
    def __init__(self, backbone=None, task=None, *, lambda1: float = 1.0, csc: bool = True) -> None:
        pass


def lookup(kind: str, name: str):
    table = {
        "tasks": {"phantom": FakeTask, "other": OtherTask},
        "backbones": {"phantom": FakeTask},
        "methods": {"kmat": FakeMethod},
        "transports": {"fgw": FakeTransport, "gw": FakeTransport},
    }
    if name not in table[kind]:
        raise UsageError(f"unknown {kind} '{name}'")
    return table[kind][name]


def build(**kw):
    return config.build(plugin_lookup=lookup, **kw)


def test_precedence_defaults_task_file_flags_set(tmp_path: Path) -> None:
    assert build()["train"]["epochs"] == 7  # task layer over defaults
    assert build()["train"]["lr"] == 0.0025  # defaults
    file = tmp_path / "c.yaml"
    file.write_text("train:\n  epochs: 11\n  seed: 4\nmethod:\n  lambda1: 0.5\n")
    cfg = build(config_file=file)
    assert (cfg["train"]["epochs"], cfg["train"]["seed"], cfg["method"]["lambda1"]) == (11, 4, 0.5)
    cfg = build(config_file=file, flags={"train.epochs": 12, "train.shots": None})
    assert cfg["train"]["epochs"] == 12 and cfg["train"]["shots"] == 16  # None flags are ignored
    cfg = build(config_file=file, flags={"train.epochs": 12}, sets=["train.epochs=13", "method.csc=false"])
    assert cfg["train"]["epochs"] == 13 and cfg["method"]["csc"] is False


def test_task_layer_follows_the_chosen_task() -> None:
    cfg = build(flags={"task.name": "other"})
    assert (cfg["train"]["epochs"], cfg["train"]["shots"]) == (3, 2)


def test_plugin_options_are_filled_and_runtime_args_excluded() -> None:
    cfg = build()
    assert cfg["transport"] == {"name": "fgw", "epsilon": 0.1, "cost": "sqeuclidean"}
    assert cfg["method"] == {"name": "kmat", "lambda1": 1.0, "csc": True}


def test_transport_none_and_its_options() -> None:
    assert build(flags={"transport.name": "none"})["transport"] == {"name": "none"}
    with pytest.raises(UsageError, match="need a transport"):
        build(sets=["transport.name=none", "transport.epsilon=0.2"])


def test_changing_plugin_name_drops_lower_layer_options(tmp_path: Path) -> None:
    file = tmp_path / "c.yaml"
    file.write_text("transport:\n  name: fgw\n  epsilon: 0.5\n")
    assert build(config_file=file, flags={"transport.name": "gw"})["transport"]["epsilon"] == 0.1


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["train.epoch=3"], r"unknown config key 'train.epoch' \(did you mean 'epochs'\?\)"),
        (["method.lamda1=3"], r"unknown config key 'method.lamda1' \(did you mean 'lambda1'\?\)"),
        (["trian.epochs=3"], r"unknown config key 'trian' \(did you mean 'train'\?\)"),
        (["train.epochs=many"], r"'train.epochs' must be int"),
        (["method.csc=1"], r"'method.csc' must be bool"),
        (["train.epochs"], r"expected key=value"),
    ],
)
def test_bad_keys_and_types_are_rejected(sets: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build(sets=sets)


def test_int_is_accepted_for_float() -> None:
    assert build(sets=["train.lr=1"])["train"]["lr"] == 1


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n  lr: [0.1\n")
    with pytest.raises(UsageError, match=r"bad.yaml: line \d+, column \d+: malformed YAML"):
        build(config_file=bad)


def test_yaml_is_safe_loaded(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("train: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(UsageError, match="malformed YAML"):
        config.load_yaml(evil)


def test_non_mapping_and_missing_files(tmp_path: Path) -> None:
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(UsageError, match="must be a mapping"):
        config.load_yaml(listy)
    with pytest.raises(UsageError, match="not found"):
        config.load_yaml(tmp_path / "missing.yaml")


def test_dump_round_trips() -> None:
    cfg = build(sets=["method.lambda1=0.25"])
    assert yaml.safe_load(config.dump(cfg)) == cfg


# ------------------------------------------------------------------------------- floats written as 1e-3
@pytest.mark.usefixtures("no_progress")
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
    assert_no_runs(tmp_path / "bad")
