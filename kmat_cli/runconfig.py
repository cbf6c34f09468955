"""The resolved run config as typed, frozen dataclasses, with each key's allowed values as field metadata.

:func:`kmat_cli.config.resolve` merges the layers and checks keys and types against ``defaults.yaml``;
:meth:`RunConfig.from_dict` then checks every value against its field's limits and returns the typed view
that the run's set-up reads (``settings.train.shots``). A value no command can run with (a momentum above 1,
``train.eval_batch_size: 0``, a seed torch cannot take) is a one-line UsageError naming the dotted key.

Limits, as the field metadata :func:`limit` writes: ``range`` ``(least, most)`` both inclusive, ``None`` for
unbounded, :class:`kmat_cli.limits.Above` for an exclusive least; ``choices``, the allowed strings;
``pattern``, a regular expression the whole string must match, with what to write instead. The plugin
sections (``task``, ``backbone``, ``method``, ``transport``) stay mappings: their options come from each
plugin's signature and their ranges from its ``limits`` (:func:`kmat_cli.limits.check_plugin`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from kmat_cli.errors import UsageError, short_repr
from kmat_cli.limits import KNOWLEDGE_REGIMES, SEED_MAX, Range, outside

OPTIMIZERS = ("sgd",)
SCHEDULERS = ("cosine", "constant")
DEVICE = (re.compile(r"auto|cpu|mps|cuda(:\d+)?"), "auto, cpu, cuda, cuda:N or mps")


def limit(
    bounds: Range | None = None,
    *,
    choices: tuple[str, ...] | None = None,
    pattern: tuple[re.Pattern[str], str] | None = None,
) -> Any:
    """A dataclass field without a default (``defaults.yaml`` holds the defaults) whose value must lie in
    ``bounds``, be one of ``choices`` or match ``pattern`` (pattern, what to write instead)."""
    return dataclasses.field(metadata={"range": bounds, "choices": choices, "pattern": pattern})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The ``train`` section: few-shot sampling, optimisation, device and threads."""

    shots: int = limit((1, None))
    seed: int = limit((0, SEED_MAX))
    epochs: int = limit((0, None))
    batch_size: int = limit((1, None))
    optimizer: str = limit(choices=OPTIMIZERS)
    lr: float = limit((0, None))
    momentum: float = limit((0, 1))
    weight_decay: float = limit((0, None))
    scheduler: str = limit(choices=SCHEDULERS)
    warmup_epochs: int = limit((0, None))
    warmup_lr: float = limit((0, None))
    device: str = limit(pattern=DEVICE)
    amp: bool = limit()
    augment_views: int = limit((0, None))
    eval_batch_size: int = limit((1, None))
    num_workers: int = limit((0, None))
    threads: int = limit((0, None))


@dataclasses.dataclass(frozen=True)
class KnowledgeConfig:
    """The ``knowledge`` section: how the low-end descriptions are degraded (:mod:`kmat_cli.knowledge`)."""

    regime: str = limit(choices=KNOWLEDGE_REGIMES)
    fraction: float = limit((0, 1))
    seed: int | None = limit((0, SEED_MAX))


Section = TypeVar("Section", TrainConfig, KnowledgeConfig)


def _section(cls: type[Section], name: str, values: Any) -> Section:
    """``cls`` from the mapping ``values`` of config section ``name``, each value within its field's
    limits."""
    if not isinstance(values, Mapping):
        raise UsageError(f"config key '{name}' must be a mapping, got {short_repr(values)}")
    given = {}
    for f in dataclasses.fields(cls):
        key = f"{name}.{f.name}"
        if f.name not in values:
            raise UsageError(f"config key '{key}' is missing")
        value = given[f.name] = values[f.name]
        bound = outside(value, f.metadata["range"]) if f.metadata["range"] else None
        if bound is not None:
            raise UsageError(f"config key '{key}' must be {bound}, got {short_repr(value)}")
        choices = f.metadata["choices"]
        if choices is not None and value not in choices:
            raise UsageError(
                f"config key '{key}' must be one of {', '.join(choices)}, got {short_repr(value)}"
            )
        pattern = f.metadata["pattern"]
        if pattern is not None and not (isinstance(value, str) and pattern[0].fullmatch(value)):
            raise UsageError(f"config key '{key}' must be {pattern[1]}, got {short_repr(value)}")
    return cls(**given)


def _plugin(values: Any) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """A resolved run config, typed: the sections of ``defaults.yaml``, plugin sections as read-only
    mappings (``{"name": ..., <options>}``)."""

    task: Mapping[str, Any]
    backbone: Mapping[str, Any]
    method: Mapping[str, Any]
    transport: Mapping[str, Any]
    descriptions: str | None
    knowledge: KnowledgeConfig
    out: str
    train: TrainConfig

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> RunConfig:
        """The typed view of the resolved config ``cfg`` (:func:`kmat_cli.config.resolve`); a value outside
        its field's limits is a one-line UsageError naming the dotted key."""
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in cfg]
        if missing:
            raise UsageError(f"config key '{missing[0]}' is missing")
        train = _section(TrainConfig, "train", cfg["train"])
        return cls(
            task=_plugin(cfg["task"]),
            backbone=_plugin(cfg["backbone"]),
            method=_plugin(cfg["method"]),
            transport=_plugin(cfg["transport"]),
            descriptions=cfg["descriptions"],
            knowledge=_section(KnowledgeConfig, "knowledge", cfg["knowledge"]),
            out=cfg["out"],
            train=train,
        )
