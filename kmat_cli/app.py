"""The ``kmat`` command: a Typer app with one module per subcommand in ``kmat_cli/commands``.

Errors: a :class:`~kmat_cli.errors.KmatError` becomes one line on stderr and its exit code (2 for bad usage
or input, 1 for runtime failures); any other exception becomes one line and exit code 1. Ctrl-C exits with
130; SIGTERM stops every command the same way (:mod:`kmat_cli.signals`) and exits with 143. ``KMAT_DEBUG=1``
shows the traceback instead. Results go to stdout, progress and messages to stderr.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kmat_cli import __version__
from kmat_cli.commands import load_commands
from kmat_cli.errors import KmatError, from_os_error, printable
from kmat_cli.signals import TERMINATED_EXIT_CODE, Terminated, terminate_as_interrupt

if TYPE_CHECKING:
    import click

app = typer.Typer(
    name="kmat",
    help="Cross-modal prompt learning for medical imaging: learn prompts on a high-end modality, "
    "deploy them on a low-end one.\n\nExample: kmat train --task phantom --transport fgw",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kmat {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """kmat: K-MaT and baselines for cross-modal prompt learning."""


for _name, _command in load_commands():
    if isinstance(_command, typer.Typer):
        app.add_typer(_command, name=_name)
    else:
        app.command(_name, epilog=getattr(sys.modules[_command.__module__], "EPILOG", None))(_command)


def _debug() -> bool:
    return os.environ.get("KMAT_DEBUG", "") not in ("", "0", "false", "no")


def _click_exceptions() -> tuple[type[click.ClickException], ...]:
    """ClickException classes: Typer may ship its own copy of click beside the click package."""
    import importlib

    found = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            found.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _one_line(message: str) -> str:
    """An error message as one line: its first non-empty line, with " ..." when more followed, without
    terminal colour codes (some libraries colour their messages), other control characters escaped."""
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", message).splitlines() if line.strip()]
    return printable(lines[0] + (" ..." if len(lines) > 1 else "")) if lines else ""


def _unwrap(text: str | None) -> str | None:
    """Help text with each paragraph on one line (the terminal wraps it at its own width), paragraphs kept."""
    if not text:
        return text
    import inspect

    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(" ".join(p.split()) if not p.startswith("\b") else p for p in paragraphs)


def _tidy(command: Any) -> Any:
    """The click command tree made from ``app``, as ``--help`` shows it: help paragraphs unwrapped, and on/off
    flags shown without a value type (they take none)."""
    command.help = _unwrap(command.help)
    command.epilog = _unwrap(command.epilog)
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    make_help_option = command.get_help_option  # click adds --help, a flag too, per context

    def help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        _tidy(sub)
    return command


def cli() -> Any:
    """The ``kmat`` click command (built from :data:`app`, tidied by :func:`_tidy`)."""
    return _tidy(typer.main.get_command(app))


def _click_error(exc: Any) -> str:
    """A click usage error as one line: the message, and the help command of the command it concerns."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    return f"kmat: error: {_one_line(exc.format_message())}{where}"


def main(argv: list[str] | None = None) -> int:
    """Run ``kmat`` with ``argv`` (default: the command line) and return its exit code; never exits itself.

    The console script calls ``sys.exit(main())``. Codes: 0 done, 1 runtime failure, 2 bad usage or input,
    130 Ctrl-C, 143 SIGTERM, or the code a command ended with (``typer.Exit``).
    """
    try:
        with terminate_as_interrupt():  # every command stops on SIGTERM as on Ctrl-C
            code = cli().main(args=argv, prog_name="kmat", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except KmatError as exc:
        if _debug():
            raise
        print(f"kmat: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("kmat: aborted", file=sys.stderr)
        return 130
    except Terminated:
        print("kmat: terminated", file=sys.stderr)
        return TERMINATED_EXIT_CODE
    except KeyboardInterrupt:
        print("kmat: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # click's own usage errors (exit 2) and anything else: one line too
        if _debug() and not isinstance(exc, _click_exceptions()):
            raise
        return _report(exc)


def _report(exc: Exception) -> int:
    """Print an error no command turned into a KmatError as one line; return its exit code: click's usage
    errors 2, an OS error a user can fix (:func:`kmat_cli.errors.from_os_error`) 2, anything else 1."""
    if isinstance(exc, _click_exceptions()):
        if _one_line(exc.format_message()):  # empty: a group called bare, its help already shown
            print(_click_error(exc), file=sys.stderr)
        return exc.exit_code
    usage = from_os_error(exc) if isinstance(exc, OSError) else None
    if usage is not None:
        print(f"kmat: error: {_one_line(str(usage))}", file=sys.stderr)
        return usage.exit_code
    print(
        f"kmat: error: {type(exc).__name__}: {_one_line(str(exc))} (set KMAT_DEBUG=1 for the traceback)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
