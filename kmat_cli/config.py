"""Run configuration: layered, validated, saved with every run.

Precedence, lowest first: built-in defaults (``defaults.yaml``) < the task's recommended config
(``Task.config``) < ``--config FILE`` < CLI flags < ``--set a.b=value``. Each layer is a nested mapping;
later layers override earlier ones key by key. YAML is read with :mod:`kmat_cli.datafiles` (a safe loader
without anchors, aliases or repeated keys, bounded in size, depth and number size).

Plugin sections (``task``, ``backbone``, ``method``, ``transport``) are ``{name: ..., <options>}``; their
options are the keyword-only arguments of the plugin's constructor (see :func:`plugin_options`). Unknown keys
anywhere are rejected with a "did you mean" suggestion; values must have the default's type (a float key
also takes ``1e-3``, which YAML 1.1 reads as a string) and lie within their limits: the run config's
field metadata (:mod:`kmat_cli.runconfig`), each plugin's ``limits`` (:mod:`kmat_cli.limits`).
"""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
import math
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from kmat_cli import datafiles, limits
from kmat_cli.errors import UsageError, short_repr
from kmat_cli.runconfig import RunConfig

PLUGIN_SECTIONS = {"task": "tasks", "backbone": "backbones", "method": "methods", "transport": "transports"}
NO_PLUGIN = "none"  # `--transport none` disables the transport loss
_DEFAULTS_FILE = Path(__file__).with_name("defaults.yaml")
# Constructor arguments the core passes at run time; they are not config options.
RUNTIME_ARGS = frozenset({"vision_only", "device"})
# A number as written in a config: YAML 1.1 reads ``1e-3`` and ``1E3`` (no dot) as strings.
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


@functools.cache
def _defaults() -> dict[str, Any]:
    return datafiles.read_yaml(_DEFAULTS_FILE)


def defaults() -> dict[str, Any]:
    """The built-in defaults (``defaults.yaml``, read once), a fresh copy each call."""
    return copy.deepcopy(_defaults())


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (:func:`kmat_cli.datafiles.read_yaml`); a missing or malformed file is a one-line
    UsageError."""
    path = Path(path)
    try:
        data = datafiles.read_yaml(path, what="config file")
    except datafiles.MissingFile as exc:
        raise UsageError(f"{path}: config file not found") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a config file must be a mapping of keys, got {type(data).__name__}")
    check_file_plugins(data, path)
    return data


def check_file_plugins(layer: Mapping[str, Any], source: str | Path) -> None:
    """Apply :func:`kmat_cli.registry.check_from_file` to every plugin name of a config layer read from
    ``source`` (its ``task``, ``backbone``, ``method`` and ``transport`` sections), before any is loaded."""
    from kmat_cli import registry

    for section, kind in PLUGIN_SECTIONS.items():
        value = layer.get(section)
        name = value.get("name") if isinstance(value, Mapping) else value
        registry.check_from_file(kind, name, source, f"{section}.name")


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> ``{"a": {"b": 1}, "c": "x"}``; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {short_repr(item)}: expected key=value, e.g. --set method.lambda1=2")
        value = datafiles.parse_yaml(raw, f"--set {short_repr(item)}") if raw.strip() else None
        set_dotted(out, key.strip(), value)
    return out


def set_dotted(cfg: dict[str, Any], key: str, value: Any) -> None:
    """Set ``cfg[a][b] = value`` for ``key = "a.b"``, creating intermediate mappings."""
    parts = key.split(".")
    node = cfg
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise UsageError(f"cannot set '{key}': '{part}' is not a section")
    node[parts[-1]] = value


def get_dotted(cfg: Mapping[str, Any], key: str) -> Any:
    """``cfg["a"]["b"]`` for ``key = "a.b"``."""
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return node


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings merge key by key, anything else in ``override`` replaces ``base``.

    A plugin section whose ``name`` changes drops the options given for the previous plugin in lower
    layers, so ``--transport gw`` does not inherit options meant for ``fgw``.
    """
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            old = out[key]
            if key in PLUGIN_SECTIONS and "name" in value and value["name"] != old.get("name"):
                old = {}
            out[key] = merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def plugin_options(obj: Any) -> dict[str, Any]:
    """The options of a plugin: keyword-only arguments with defaults of its constructor (or callable),
    except the run-time arguments in ``RUNTIME_ARGS`` (``vision_only``, ``device``)."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return {}
    return {
        name: p.default
        for name, p in sig.parameters.items()
        if p.default is not inspect.Parameter.empty
        and name not in RUNTIME_ARGS
        and p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def type_ok(default: Any, value: Any) -> bool:
    """``value`` fits a key whose default is ``default``: same type (int for float too); null only where the
    default is null (then any value)."""
    if value is None or default is None:
        return default is None
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _typed(default: Any, value: Any) -> Any:
    """``value`` as a float where the key is a float and the value a number YAML 1.1 left as a string."""
    if isinstance(default, float) and isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        return float(value)
    return value


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _validate(section: str, values: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        where = f"{section}.{key}" if section else key
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known: {', '.join(sorted(schema))}"
            raise UsageError(f"unknown config key '{where}'{hint}")
        default = schema[key]
        value = _typed(default, value)
        if isinstance(default, dict) and not (section == "" and key in PLUGIN_SECTIONS):
            if not isinstance(value, Mapping):
                raise UsageError(f"config key '{where}' must be a mapping, got {short_repr(value)}")
            out[key] = _validate(where, value, default)
        elif _non_finite(value) and not _non_finite(default):
            raise UsageError(f"config key '{where}' must be a finite number, got {short_repr(value)}")
        elif not type_ok(default, value):
            # "{...}" reads as a YAML mapping: a text key given one was meant as text
            hint = f" (quote it: --set '{where}=\"...\"')" if isinstance(default, str) else ""
            raise UsageError(
                f"config key '{where}' must be {type(default).__name__} like {default!r}, got {short_repr(value)}{hint}"
            )
        else:
            out[key] = value
    return out


def _check_top_level(cfg: Mapping[str, Any], schema: Mapping[str, Any], plugin_lookup: Callable) -> None:
    """A top-level key that is an option of one section (``lambda1`` for ``method.lambda1``): a UsageError
    naming the dotted key. Sections are searched in order: the defaults' own (``train``), then the options
    of each configured plugin; other unknown keys are left to :func:`_validate`."""
    for key in cfg:
        if key in schema:
            continue
        for section, default in schema.items():
            options: Mapping[str, Any] = default if isinstance(default, Mapping) else {}
            if section in PLUGIN_SECTIONS:
                given = cfg.get(section)
                name = given.get("name") if isinstance(given, Mapping) else given
                try:
                    options = plugin_options(plugin_lookup(PLUGIN_SECTIONS[section], name))
                except Exception:  # an unknown plugin is reported by resolve with its own message
                    continue
            if key in options and key != "name":
                raise UsageError(f"unknown config key '{key}' (did you mean '{section}.{key}'?)")


def resolve(
    layers: Iterable[Mapping[str, Any]], plugin_lookup: Callable[[str, str], Any] | None = None
) -> dict[str, Any]:
    """Merge ``layers`` over the defaults, check every key and fill plugin options from signatures.

    ``plugin_lookup(kind, name)`` returns the plugin class (default: :func:`kmat_cli.registry.get`).
    Returns the complete resolved config, every option explicit (what is saved in the run folder).
    """
    if plugin_lookup is None:
        from kmat_cli import registry

        plugin_lookup = registry.get
    cfg = defaults()
    schema = defaults()
    for layer in layers:
        cfg = merge(cfg, layer)
    _check_top_level(cfg, schema, plugin_lookup)
    cfg = _validate("", cfg, schema)
    if cfg.get("descriptions") is not None and not isinstance(cfg["descriptions"], str):
        raise UsageError(
            f"config key 'descriptions' must be a file path, got {short_repr(cfg['descriptions'])}"
        )
    for section, kind in PLUGIN_SECTIONS.items():
        given = dict(cfg[section]) if isinstance(cfg[section], Mapping) else {"name": cfg[section]}
        name = given.pop("name", None)
        if not isinstance(name, str) or not name:
            raise UsageError(f"config key '{section}.name' must name a {kind[:-1]}")
        if name == NO_PLUGIN and section == "transport":
            if given:
                raise UsageError(
                    f"config keys {sorted(given)} under 'transport' need a transport, not 'none'"
                )
            cfg[section] = {"name": NO_PLUGIN}
            continue
        if section == "backbone":
            name, given = backbone_spelling(name, given)
        plugin = plugin_lookup(kind, name)
        options = plugin_options(plugin)
        cfg[section] = {"name": name, **options, **_validate(section, given, options)}
        limits.check_plugin(section, plugin, cfg[section])
    RunConfig.from_dict(cfg)  # every value within its limits
    return cfg


def backbone_spelling(name: str, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """open_clip's own spellings as a backbone name: ``hf-hub:ORG/NAME``, ``local-dir:PATH`` or a folder
    path (``./dir``, ``/abs/dir``, ``~/dir``, anything with a slash) mean the ``open_clip`` backbone with
    that ``model`` (a folder becomes ``local-dir:<absolute path>``); other names are returned unchanged
    (``module:attr`` plugin paths have no slash)."""
    if name.startswith(("hf-hub:", "local-dir:")):
        return "open_clip", {"model": name, **options}
    if "/" in name or "\\" in name or name.startswith((".", "~")):
        return "open_clip", {"model": f"local-dir:{Path(name).expanduser().resolve()}", **options}
    return name, dict(options)


def load_saved(path: str | Path, plugin_lookup: Callable[[str, str], Any] | None = None) -> dict[str, Any]:
    """A run folder's saved ``config.yaml``, validated exactly as a new config is (:func:`resolve`: known
    keys, types, ranges, plugin options) and complete: a saved config names every option, so a missing
    section or key means a damaged file. Any fault is one UsageError naming the file and the key."""
    path = Path(path)
    saved = load_yaml(path)
    damaged = "the run's config is damaged; restore it or start a new run"
    try:
        cfg = resolve([saved], plugin_lookup)
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}; {damaged}") from exc
    missing = _first_missing(cfg, saved)
    if missing is not None:
        raise UsageError(f"{path}: config key '{missing}' is missing; {damaged}")
    _fill_later_keys(cfg, saved)
    return cfg


# Keys added after run folders were first saved, with the value a run saved before them computed with
# (None: the key's default computes it). A saved config may lack them (a run folder of an earlier kmat);
# any other missing key means damage.
LATER_KEYS: dict[str, Any] = {
    "knowledge": None,
    "transport.warm_start": False,
    "method.agreement": False,
    "method.agreement_tau": None,
    "method.agreement_lambda2": None,
}


def _fill_later_keys(cfg: dict[str, Any], saved: Mapping[str, Any]) -> None:
    """Set each :data:`LATER_KEYS` key that ``saved`` lacks and ``cfg`` (resolved) has to its older value."""
    for dotted, older in LATER_KEYS.items():
        if older is None:
            continue
        *sections, key = dotted.split(".")
        have: Any = cfg
        given: Any = saved
        for section in sections:
            have = have.get(section) if isinstance(have, dict) else None
            given = given.get(section) if isinstance(given, Mapping) else None
        if isinstance(have, dict) and key in have and isinstance(given, Mapping) and key not in given:
            have[key] = older


def _first_missing(full: Mapping[str, Any], given: Mapping[str, Any], prefix: str = "") -> str | None:
    """The first dotted key of ``full`` that ``given`` lacks, :data:`LATER_KEYS` aside (plugin sections
    given as a bare name count as naming the plugin only)."""
    for key, value in full.items():
        where = f"{prefix}{key}"
        if where in LATER_KEYS and key not in given:
            continue
        if key not in given:
            return where
        if isinstance(value, Mapping) and isinstance(given[key], Mapping):
            found = _first_missing(value, given[key], f"{where}.")
            if found is not None:
                return found
    return None


def dump(cfg: Mapping[str, Any]) -> str:
    """The config as YAML text (what ``config.yaml`` in a run folder holds)."""
    return yaml.safe_dump(dict(cfg), sort_keys=False, default_flow_style=False)


def build(
    *,
    config_file: str | Path | None = None,
    flags: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
    plugin_lookup: Callable[[str, str], Any] | None = None,
) -> dict[str, Any]:
    """The resolved config of a command: defaults < task config < ``config_file`` < ``flags`` < ``sets``.

    ``flags`` uses dotted keys (``{"task.name": "chest", "train.shots": 8}``); ``None`` values are ignored.
    """
    if plugin_lookup is None:
        from kmat_cli import registry

        plugin_lookup = registry.get
    file_layer = load_yaml(config_file) if config_file else {}
    flag_layer: dict[str, Any] = {}
    for key, value in (flags or {}).items():
        if value is not None:
            set_dotted(flag_layer, key, value)
    set_layer = parse_set(sets)
    upper = [file_layer, flag_layer, set_layer]
    task_name = defaults()["task"]["name"]
    for layer in upper:
        section = layer.get("task")
        if isinstance(section, Mapping) and "name" in section:
            task_name = section["name"]
        elif isinstance(section, str):
            task_name = section
    if not isinstance(task_name, str) or not task_name:
        raise UsageError(f"config key 'task.name' must name a task, got {short_repr(task_name)}")
    task_layer = getattr(plugin_lookup("tasks", task_name), "config", {}) or {}
    if isinstance(task_name, str) and task_name.lower().endswith((".yaml", ".yml")):
        check_file_plugins(task_layer, task_name)  # a task file's config section is data too
    return resolve([task_layer, *upper], plugin_lookup)
