"""Every registered plugin (method, transport, task, backbone) states the ranges of its options as data (``limits``), and the
config validator enforces each one before a run exists: a value just outside is a one-line UsageError
naming ``section.option``, a value on an inclusive bound is accepted. Parametrised over the registry, so a
new plugin is checked as soon as it is registered.
"""

from __future__ import annotations

from typing import Any

import pytest

from kmat_cli import config
from kmat_cli.errors import UsageError
from kmat_cli.limits import Above
from kmat_cli.registry import get, names

SECTIONS = {"method": "methods", "transport": "transports", "task": "tasks", "backbone": "backbones"}
CASES = [(section, name) for section, kind in SECTIONS.items() for name in names(kind)]


def _limits(section: str, name: str) -> dict[str, Any]:
    return dict(getattr(get(SECTIONS[section], name), "limits", None) or {})


@pytest.mark.parametrize(("section", "name"), CASES)
def test_declared_limits_name_numeric_options(section: str, name: str) -> None:
    options = config.plugin_options(get(SECTIONS[section], name))
    for key, (least, most) in _limits(section, name).items():
        assert key in options, f"{name} limits '{key}', which is not one of its options"
        default = options[key]
        assert isinstance(default, (int, float)) and not isinstance(default, bool), key
        assert (least is None or default >= least) and (most is None or default <= most), (key, default)


def _outside(least: float | None, most: float | None, integer: bool) -> list[Any]:
    values: list[Any] = []
    if least is not None:
        values.append(least if isinstance(least, Above) else least - (1 if integer else 1e-3))
    if most is not None:
        values.append(most + (1 if integer else most * 1e-3 + 1e-3))
    return [int(v) if integer else float(v) for v in values]


@pytest.mark.parametrize(("section", "name"), CASES)
def test_every_declared_limit_is_enforced_by_the_config(section: str, name: str) -> None:
    options = config.plugin_options(get(SECTIONS[section], name))
    for key, (least, most) in _limits(section, name).items():
        integer = isinstance(options[key], int)
        for value in _outside(least, most, integer):
            with pytest.raises(UsageError, match=rf"'{section}\.{key}' must be .*got {value!r}"):
                config.resolve([{section: {"name": name, key: value}}])
        for bound in (least, most):
            if bound is not None and not isinstance(bound, Above):
                value = int(bound) if integer else float(bound)
                assert config.resolve([{section: {"name": name, key: value}}])[section][key] == value


def test_the_shipped_loss_weights_and_solver_options_have_ranges() -> None:
    assert {"lambda1", "lambda2"} <= set(_limits("method", "kmat"))
    assert {"weight"} <= set(_limits("method", "kgcoop"))
    assert {"epsilon", "alpha", "max_iter", "tol"} <= set(_limits("transport", "fgw"))
