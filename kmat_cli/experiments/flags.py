"""A config as dotted flags, the form every experiment cell carries (``{"train.lr": 0.01, ...}``).

One rule for all of them (benchmark cells, tuning trials, cell identities, ``best.yaml``): nested mappings
become dotted keys, and a plugin section given as a bare name (``method: kmat``) becomes ``method.name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kmat_cli import config


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; a plugin section given as a bare name becomes ``x.name``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if not prefix and key in config.PLUGIN_SECTIONS and isinstance(value, str):
            value = {"name": value}
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def common_flags(config_file: str | Path | None, flags: Mapping[str, Any]) -> dict[str, Any]:
    """The dotted flags every cell gets: the ``--config`` file's keys under the command-line ``flags``
    (None values skipped), merged the way :func:`kmat_cli.config.build` layers them (a flag that renames
    a plugin drops the file's options of that section). A cell carries flags and ``--set`` items only, so
    a config file travels as flags; the precedence is unchanged (file < flags < sets)."""
    nested: dict[str, Any] = {}
    for key, value in flags.items():
        if value is not None:
            config.set_dotted(nested, key, value)
    file_layer: dict[str, Any] = {}
    if config_file:
        for key, value in flatten(config.load_yaml(config_file)).items():
            config.set_dotted(file_layer, key, value)
    return flatten(config.merge(file_layer, nested))


def task_slug(task: str) -> str:
    """``task`` as one part of a default grid folder's name (``runs/benchmark/<tasks>``,
    ``runs/tune/<task>-<method>``): a task file's own ``name:`` (read and checked here), never its path,
    so the folder always lands under its root; any other name made safe by :func:`kmat_cli.runs.slug`."""
    from kmat_cli import registry, runs

    if task.lower().endswith((".yaml", ".yml")):
        task = str(getattr(registry.get("tasks", task), "name", "") or task)
    return runs.slug(task)
