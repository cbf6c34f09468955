"""A ``kmat benchmark`` request: what was asked (tasks, methods, seeds, tables, flags, ``--set``, axes), kept
in the benchmark folder's ``benchmark.json`` so that a rerun resumes there and ``kmat benchmark merge``
rebuilds the plan from shard folders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmat_cli import config, datafiles, registry
from kmat_cli.errors import UsageError
from kmat_cli.experiments import axes

REQUEST_FILE = "benchmark.json"
REQUEST_FORMAT = "kmat.benchmark/v1"


@dataclass(frozen=True)
class Request:
    """What ``kmat benchmark`` was asked: ``flags`` are dotted config flags common to every cell (the
    ``--config`` file's content included), ``sets`` the user's ``--set`` overrides."""

    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    ablation: bool = False
    flags: Mapping[str, Any] = field(default_factory=dict)
    sets: tuple[str, ...] = ()
    defaults_rule: bool = False
    axes: axes.Axes = ()
    knowledge_rows: bool = False  # fixed K-MaT configurations without its agreement rule (variants)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REQUEST_FORMAT,
            "tasks": list(self.tasks),
            "methods": list(self.methods),
            "seeds": list(self.seeds),
            "ablation": self.ablation,
            "defaults_rule": self.defaults_rule,
            "flags": dict(self.flags),
            "sets": list(self.sets),
            "axes": axes.to_json(self.axes),
            "knowledge_rows": self.knowledge_rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Request:
        return cls(
            tasks=tuple(data["tasks"]),
            methods=tuple(data["methods"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            ablation=bool(data.get("ablation", False)),
            defaults_rule=bool(data.get("defaults_rule", False)),
            flags=dict(data.get("flags", {})),
            sets=tuple(data.get("sets", ())),
            axes=axes.from_json(data.get("axes", ())),
            knowledge_rows=bool(data.get("knowledge_rows", False)),
        )


def same_request(request: Request, other: Request) -> bool:
    """Whether two requests ask for the same grid (equal ``benchmark.json`` content)."""

    def key(r: Request) -> str:
        return json.dumps(r.to_dict(), sort_keys=True, default=str)

    return key(request) == key(other)


def load_request(folder: Path) -> Request:
    path = Path(folder) / REQUEST_FILE
    try:
        data = datafiles.read_json(path)
    except datafiles.MissingFile as exc:
        raise UsageError(f"{path}: not a kmat benchmark folder (no {REQUEST_FILE})") from exc
    if not isinstance(data, dict) or data.get("format") != REQUEST_FORMAT:
        raise UsageError(f"{path}: not a {REQUEST_FORMAT} file")
    request = Request.from_dict(data)
    _check_plugins(request, path)
    return request


def _check_plugins(request: Request, path: Path) -> None:
    """The plugin names of a request read from ``path`` follow the rule for files
    (:func:`kmat_cli.registry.check_from_file`): no ``module:attr`` without the user's opt-in."""
    for kind, values in (("tasks", request.tasks), ("methods", request.methods)):
        for value in values:
            registry.check_from_file(kind, value, path, kind)
    for key, value in request.flags.items():
        section, _, option = str(key).partition(".")
        if section in config.PLUGIN_SECTIONS and option in ("", "name"):
            registry.check_from_file(config.PLUGIN_SECTIONS[section], value, path, f"flags.{key}")
