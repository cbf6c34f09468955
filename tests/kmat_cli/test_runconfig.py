"""The typed run config: its sections match ``defaults.yaml`` key for key, it is read-only, and every value
outside its field's limits is a one-line UsageError naming the dotted key."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from kmat_cli import config
from kmat_cli.errors import UsageError
from kmat_cli.runconfig import KnowledgeConfig, RunConfig, TrainConfig


@pytest.mark.parametrize(("cls", "section"), [(TrainConfig, "train"), (KnowledgeConfig, "knowledge")])
def test_sections_are_the_keys_of_the_defaults(cls: type, section: str) -> None:
    assert [f.name for f in dataclasses.fields(cls)] == list(config.defaults()[section])


def test_typed_view_holds_the_resolved_values_read_only() -> None:
    cfg = config.build(sets=["train.shots=3", "knowledge.regime=pooled", "method.lambda1=2"])
    settings = RunConfig.from_dict(cfg)
    assert dataclasses.asdict(settings.train) == cfg["train"]
    assert dataclasses.asdict(settings.knowledge) == cfg["knowledge"]
    assert (settings.train.shots, settings.knowledge.regime, settings.method["lambda1"]) == (3, "pooled", 2.0)
    assert dict(settings.transport) == cfg["transport"] and settings.out == cfg["out"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.train.shots = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.method["lambda1"] = 3  # type: ignore[index]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("train.momentum=5", "config key 'train.momentum' must be between 0 and 1, got 5"),
        ("train.eval_batch_size=0", "config key 'train.eval_batch_size' must be at least 1, got 0"),
        ("train.seed=4294967296", "config key 'train.seed' must be between 0 and 4294967295, got 4294967296"),
        ("train.optimizer=adam", "config key 'train.optimizer' must be one of sgd, got 'adam'"),
        ("train.scheduler=step", "config key 'train.scheduler' must be one of cosine, constant, got 'step'"),
        ("train.device=tpu", "config key 'train.device' must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
        ("knowledge.fraction=1.5", "config key 'knowledge.fraction' must be between 0 and 1, got 1.5"),
        ("knowledge.seed=-1", "config key 'knowledge.seed' must be between 0 and 4294967295, got -1"),
        ("knowledge.regime=best", "config key 'knowledge.regime' must be one of shipped, partial, pooled"),
    ],
)
def test_values_outside_their_limits_are_one_line_errors(setting: str, message: str) -> None:
    with pytest.raises(UsageError) as refused:
        config.build(sets=[setting])
    assert str(refused.value).startswith(message)


def _without(cfg: dict[str, Any], section: str, key: str | None = None) -> dict[str, Any]:
    cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in cfg.items()}
    if key is None:
        del cfg[section]
    else:
        del cfg[section][key]
    return cfg


def test_an_incomplete_config_names_the_missing_key() -> None:
    cfg = config.build()
    for damaged, message in [
        (_without(cfg, "train", "lr"), "config key 'train.lr' is missing"),
        (_without(cfg, "knowledge"), "config key 'knowledge' is missing"),
    ]:
        with pytest.raises(UsageError) as refused:
            RunConfig.from_dict(damaged)
        assert str(refused.value) == message
