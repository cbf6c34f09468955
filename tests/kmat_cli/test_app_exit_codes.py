"""``kmat_cli.app.main`` returns the exit code and never exits itself; the console script (``sys.exit(main())``)
and ``python -m kmat_cli.app`` exit with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from kmat_cli import envinfo
from kmat_cli.app import main
from kmat_cli.signals import Terminated

KMAT = str(Path(sys.executable).with_name("kmat"))


def _raise(exc: BaseException):
    def collect() -> dict:
        raise exc

    return collect


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--version"], 0),  # an eager option that ends the command early
        (["list", "backbones"], 0),
        (["train", "--bogus"], 2),  # click's usage error
        (["list", "nosuch"], 2),  # a kmat UsageError
    ],
)
def test_main_returns_the_exit_code(argv: list[str], code: int, capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == code  # a SystemExit here would fail the test


@pytest.mark.parametrize(
    ("exc", "code", "said"),
    [
        (RuntimeError("boom"), 1, "kmat: error: RuntimeError: boom"),
        (KeyboardInterrupt(), 130, None),  # Typer turns Ctrl-C in a command into its exit code 130
        (Terminated(), 143, "kmat: terminated"),
        (typer.Exit(5), 5, None),
    ],
)
def test_main_returns_the_code_of_a_failing_command(
    exc: BaseException,
    code: int,
    said: str | None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.delenv("KMAT_DEBUG", raising=False)
    monkeypatch.setattr(envinfo, "collect", _raise(exc))
    assert main(["env"]) == code
    err = capsys.readouterr().err
    assert said is None or err.startswith(said), err


@pytest.mark.parametrize(("argv", "code"), [(["--version"], 0), (["list", "nosuch"], 2)])
def test_console_script_and_module_exit_with_the_code(argv: list[str], code: int) -> None:
    for command in ([KMAT], [sys.executable, "-m", "kmat_cli.app"]):
        result = subprocess.run([*command, *argv], capture_output=True, text=True, timeout=120)
        assert result.returncode == code, (command, result.stderr)
