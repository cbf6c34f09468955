"""Preparing a training is one pass down the layers: the config validated once into its typed view, the
runtime (threads, device) set up once, then the parts assembled, the method at the run's seed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kmat_cli import assemble, config, runtime, threads, workflow
from kmat_cli.errors import UsageError


def _spy(monkeypatch: pytest.MonkeyPatch, calls: list[str], owner: Any, name: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recorded)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    for owner, name in [
        (runtime, "start"),
        (threads, "apply"),
        (assemble, "build_task"),
        (assemble, "build_parts"),
        (assemble, "build_method"),
    ]:
        _spy(monkeypatch, seen, owner, name)
    return seen


def test_prepare_sets_up_the_runtime_once_then_assembles(tmp_path: Path, calls: list[str]) -> None:
    cfg = config.build(flags={"train.epochs": 1, "train.shots": 2, "out": str(tmp_path)})
    prepared = workflow.prepare(cfg, progress=False)
    assert calls == ["start", "apply", "build_task", "build_parts", "build_method"]
    assert prepared.settings.train.shots == 2 and prepared.cfg == cfg
    assert prepared.feats.shape[0] == prepared.labels.shape[0] == 2 * len(prepared.parts.task.class_names)


def test_a_config_outside_its_limits_stops_before_the_runtime(tmp_path: Path, calls: list[str]) -> None:
    cfg = config.build(flags={"out": str(tmp_path)})
    cfg["train"]["momentum"] = 5.0  # a dict a library caller changed after resolving
    with pytest.raises(UsageError, match=r"'train\.momentum' must be between 0 and 1"):
        workflow.prepare(cfg, progress=False)
    assert calls == []
