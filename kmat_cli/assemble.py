"""Build a run's parts from its resolved config: backbone, task, descriptions, transport, method.

Everything is reached through the registry (``cfg[section]["name"]``, options from the section), so a
third-party plugin works wherever a built-in does. Shared by ``train``, ``evaluate`` and ``export``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from kmat_cli import knowledge, registry
from kmat_cli.api import Backbone, Task, Transport, load_descriptions
from kmat_cli.config import NO_PLUGIN
from kmat_cli.errors import UsageError
from kmat_cli.methods.base import Method, MethodSetup
from kmat_cli.runtime import seed_everything


def _options(section: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k != "name"}


def _parameters(cls: Any) -> Mapping[str, Any]:
    try:
        return inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return {}


def accepts(kind: str, section: Mapping[str, Any], option: str) -> bool:
    """Whether the plugin ``section["name"]`` of ``kind`` takes the keyword ``option``."""
    return option in _parameters(registry.get(kind, section["name"]))


def construct(kind: str, section: Mapping[str, Any], *args: Any, **runtime: Any) -> Any:
    """``registry.get(kind, name)(*args, **options, **runtime)``; runtime args only where accepted (a
    plugin without e.g. ``vision_only`` or ``device`` is built without them)."""
    cls = registry.get(kind, section["name"])
    params = _parameters(cls)
    accepted = {k: v for k, v in runtime.items() if k in params}
    return cls(*args, **_options(section), **accepted)


@dataclass
class Parts:
    """The frozen pieces of a run (everything but the method)."""

    cfg: dict[str, Any]
    device: torch.device
    backbone: Backbone
    task: Task
    descriptions: knowledge.Descriptions | None
    transport: Transport | None


def build_task(cfg: Mapping[str, Any]) -> Task:
    return construct("tasks", cfg["task"])


def build_parts(cfg: Mapping[str, Any], device: torch.device, *, task: Task | None = None) -> Parts:
    """Backbone (moved to ``device``), task, descriptions (``cfg["descriptions"]`` file, else the
    task's own; None when the task has none; its low-end part degraded by ``cfg["knowledge"]``,
    :mod:`kmat_cli.knowledge`) and transport (None for ``transport.name: none``)."""
    task = task if task is not None else build_task(cfg)
    backbone = construct("backbones", cfg["backbone"], device=str(device))
    backbone.to(device)
    descriptions: knowledge.Descriptions | None
    if cfg.get("descriptions"):
        descriptions = load_descriptions(cfg["descriptions"], task.class_names)
    else:
        try:
            descriptions = task.descriptions
        except (NotImplementedError, FileNotFoundError):
            descriptions = None
    descriptions = knowledge.apply(descriptions, task, cfg)
    return Parts(
        cfg=dict(cfg),
        device=device,
        backbone=backbone,
        task=task,
        descriptions=descriptions,
        transport=build_transport(cfg),
    )


def build_transport(cfg: Mapping[str, Any]) -> Transport | None:
    """The configured transport loss (None for ``transport.name: none``)."""
    section = cfg["transport"]
    return None if section["name"] == NO_PLUGIN else construct("transports", section)


def build_method(parts: Parts, *, seed: int) -> Method:
    """The configured method on ``parts.device``, initialised at ``seed``: the global generators are seeded
    with it (:func:`kmat_cli.runtime.seed_everything`) right before the method draws its initial context,
    so the method does not depend on what was built before it."""
    seed_everything(seed)
    setup = MethodSetup(
        backbone=parts.backbone,
        class_names=list(parts.task.class_names),
        modalities=dict(parts.task.modalities),
        descriptions=parts.descriptions,
        transport=parts.transport,
    )
    method = construct("methods", parts.cfg["method"], setup)
    if not isinstance(method, Method):
        raise UsageError(f"method '{parts.cfg['method']['name']}' is not a kmat Method subclass")
    return method.to(parts.device)
