"""Every ``kmat`` command declares its options in Typer's ``Annotated`` style with true types: the annotation
carries the flag (``typer.Option``/``typer.Argument``), the default is a plain value, and an option that may
be absent (default None) is typed ``X | None``. A short option has one meaning in every command."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import typer
from kmat_runner import cli
from typer.models import ParameterInfo

from kmat_cli.app import app
from kmat_cli.commands import _options as options


def _callbacks(typer_app: typer.Typer, path: str) -> Iterator[tuple[str, Callable]]:
    """(command path, function) of every callback and command of ``typer_app`` and its sub-apps."""
    if typer_app.registered_callback is not None and typer_app.registered_callback.callback is not None:
        yield path, typer_app.registered_callback.callback
    for command in typer_app.registered_commands:
        yield f"{path} {command.name or command.callback.__name__}", command.callback
    for group in typer_app.registered_groups:
        yield from _callbacks(group.typer_instance, f"{path} {group.name}")


CALLBACKS = dict(_callbacks(app, "kmat"))


def _parameters(function: Callable) -> Iterator[tuple[inspect.Parameter, object]]:
    """Each Typer-declared parameter of ``function`` with its resolved annotation (``typer.Context`` left out)."""
    hints = typing.get_type_hints(function, include_extras=True)
    for parameter in inspect.signature(function).parameters.values():
        if hints[parameter.name] is not typer.Context:
            yield parameter, hints[parameter.name]


def _admits_none(annotation: object) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        annotation
    )


def _click_paths(command: object, path: str) -> Iterator[str]:
    """The path of every command of the click tree that runs a function of its own."""
    if getattr(command, "callback", None) is not None:
        yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _click_paths(sub, f"{path} {name}")


def test_every_command_is_found() -> None:
    """The walk over the Typer app reaches every command that ``kmat`` runs (its click tree)."""
    from kmat_cli.app import cli

    assert set(CALLBACKS) == set(_click_paths(cli(), "kmat"))
    assert {"kmat", "kmat train", "kmat benchmark merge", "kmat data sample"} <= set(CALLBACKS)


@pytest.mark.parametrize("path", sorted(CALLBACKS))
def test_parameters_are_annotated_with_plain_defaults(path: str) -> None:
    for parameter, annotation in _parameters(CALLBACKS[path]):
        where = f"{path}: {parameter.name}"
        assert not isinstance(parameter.default, ParameterInfo), f"{where}: Typer declaration as the default"
        assert typing.get_origin(annotation) is typing.Annotated, f"{where}: not Annotated"
        declarations = [m for m in annotation.__metadata__ if isinstance(m, ParameterInfo)]
        assert len(declarations) == 1, f"{where}: {declarations}"


@pytest.mark.parametrize("path", sorted(CALLBACKS))
def test_options_that_default_to_none_are_typed_optional(path: str) -> None:
    """The default Typer applies (the parameter's, or a declaration's in the old call-default style) is
    None exactly where the type admits None."""
    for parameter, annotation in _parameters(CALLBACKS[path]):
        annotated = typing.get_origin(annotation) is typing.Annotated
        base = typing.get_args(annotation)[0] if annotated else annotation
        default = parameter.default
        if isinstance(default, ParameterInfo):
            default = default.default
        if default is None:
            assert _admits_none(base), f"{path}: {parameter.name} defaults to None but is typed {base}"
        elif default not in (inspect.Parameter.empty, ...):
            assert not _admits_none(base), f"{path}: {parameter.name} is never None but typed {base}"


def test_shared_aliases_declare_one_flag_each() -> None:
    """The aliases of _options are Annotated with one Typer declaration, an optional one typed ``X | None``."""
    aliases = {
        name: value for name, value in vars(options).items() if typing.get_origin(value) is typing.Annotated
    }
    assert {"Task", "Backbone", "Transport", "Seed", "Shots", "Epochs", "Config", "Sets", "RunFolder"} <= set(
        aliases
    )
    for name, alias in aliases.items():
        assert len([m for m in alias.__metadata__ if isinstance(m, ParameterInfo)]) == 1, name


def test_short_options_mean_the_same_everywhere(capsys: pytest.CaptureFixture) -> None:
    code, stdout, _ = cli("predict", "--help")
    assert code == 0 and "--modality" in stdout and " -m" not in stdout
    for command in ("train", "tune", "benchmark"):
        code, stdout, _ = cli(command, "--help")
        assert code == 0 and "-m" in stdout and "--method" in stdout, command
    code, stdout, _ = cli("export", "--help")
    assert "kmat export runs/train/phantom-kmat-s1-1 --output phantom-prompts.safetensors" in " ".join(
        stdout.split()
    )


# --------------------------------------------------------------------------- 8. short options
def test_short_options_have_one_meaning_and_tune_o_writes_a_file(tmp_path: Path, capsys) -> None:
    from kmat_cli.app import cli as click_group

    root = click_group()
    for name, command in root.commands.items():
        subs = getattr(command, "commands", None) or {name: command}
        for sub in subs.values():
            for param in sub.params:
                opts = set(param.opts)
                if "-o" in opts:
                    assert "--output" in opts, (name, param.opts)
                if "-b" in opts:
                    assert "--backbone" in opts, (name, param.opts)
                if "--out" in opts:
                    assert "-o" not in opts, (name, param.opts)
    code, _, stderr = cli("tune", "--out", tmp_path / "best.yaml", "--epochs", "1")
    assert code == 2 and "--output" in stderr and not (tmp_path / "best.yaml").exists()
    code, _, stderr = cli("predict", "scans", "-b", "phantom")
    assert code == 2 and "No such option: -b" in stderr
