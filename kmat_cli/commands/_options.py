"""The options several ``kmat`` commands share, declared once: a flag means the same (name, short name,
type, default) in every command that takes it.

Each factory returns the Typer declaration to use as a parameter's default, ``task: str = options.task()``;
``help=`` words it for a command whose use differs (``--task`` of ``kmat benchmark`` takes a list).
A short name means one thing across kmat: ``-t`` task, ``-m`` method(s), ``-b`` backbone, ``-c`` config,
``-o`` the file a command writes (``--output``), ``-j`` jobs. A folder a command writes is ``--out`` (no
short name), so ``-o best.yaml`` can never create a folder named like a file.

Also the parsers of the list-valued options (``--seeds 1,2,3``, ``--task chest,breast``), so that every
command reads and rejects them alike. Light at import time (Typer only), like every command module.
"""

from __future__ import annotations

from typing import Any

import typer

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps."
THREADS_HELP = "torch CPU threads (default: $OMP_NUM_THREADS, else the cores not busy)."


def task(help: str = "Task name (kmat list tasks). Default: phantom.") -> Any:
    """``--task/-t``: a task name (a comma-separated list where ``help`` says so)."""
    return typer.Option(None, "--task", "-t", help=help)


def method() -> Any:
    """``--method/-m``: one method name."""
    return typer.Option(None, "--method", "-m", help="Method name (kmat list methods). Default: kmat.")


def methods(default: str) -> Any:
    """``--methods/-m``: a comma-separated list of method names (read it with :func:`comma_list`)."""
    return typer.Option(default, "--methods", "-m", help="Methods, comma-separated.")


def transport(help: str = "Transport loss: fgw, wasserstein, gw, none, ...") -> Any:
    """``--transport``: the transport of K-MaT."""
    return typer.Option(None, "--transport", help=help)


def backbone() -> Any:
    """``--backbone/-b``: a backbone name."""
    return typer.Option(None, "--backbone", "-b", help="Backbone name (kmat list backbones).")


def shots() -> Any:
    """``--shots``: labelled high-end images per class."""
    return typer.Option(None, "--shots", help="Labelled high-end images per class (default 16).")


def epochs() -> Any:
    """``--epochs``: training epochs."""
    return typer.Option(None, "--epochs", help="Training epochs (default 50).")


def seed(help: str = "Seed of the few-shot draw and the initialisation.", default: int | None = None) -> Any:
    """``--seed``: one seed."""
    return typer.Option(default, "--seed", help=help)


def seeds(default: str, help: str = "Seeds, comma-separated.") -> Any:
    """``--seeds``: comma-separated seeds (read them with :func:`parse_seeds`)."""
    return typer.Option(default, "--seeds", help=help)


def device(help: str = DEVICE_HELP, default: str | None = None) -> Any:
    """``--device``: where torch runs (None: the config's ``train.device``)."""
    return typer.Option(default, "--device", help=help)


def threads(help: str = THREADS_HELP) -> Any:
    """``--threads``: torch CPU threads."""
    return typer.Option(None, "--threads", help=help)


def config(help: str = "YAML config file (over the task's defaults).") -> Any:
    """``--config/-c``: a YAML config file."""
    return typer.Option(None, "--config", "-c", help=help)


def sets(help: str = "Override any config key: --set method.lambda1=2") -> Any:
    """``--set KEY=VALUE``, repeatable: config overrides."""
    return typer.Option([], "--set", help=help)


def out(help: str, required: bool = False) -> Any:
    """``--out``: the folder a command writes (no short name: ``-o`` is a file, :func:`output`)."""
    return typer.Option(... if required else None, "--out", help=help)


def output(help: str) -> Any:
    """``--output/-o``: the file a command writes its result to."""
    return typer.Option(None, "--output", "-o", help=help)


def check_folder(out: Any) -> None:
    """A one-line UsageError when a folder option (``--out``) is named like a file the command could write
    instead (``.yaml``, ``.json``, ``.csv``, ...): the user meant ``--output``."""
    from pathlib import Path

    from kmat_cli.errors import UsageError

    suffix = Path(str(out)).suffix.lower() if out is not None else ""
    if suffix in (".yaml", ".yml", ".json", ".jsonl", ".csv", ".md", ".safetensors", ".txt"):
        raise UsageError(f"--out {out} is a folder; to write a file, use --output {out} (-o)")


def run_folder() -> Any:
    """``RUN``: a run folder argument."""
    return typer.Argument(..., help="A run folder made by `kmat train`.")


def as_json(help: str) -> Any:
    """``--json``: print JSON on stdout instead of the table or path."""
    return typer.Option(False, "--json", help=help)


def executor(help: str = "local, or ray (the 'distributed' extra).") -> Any:
    """``--executor``: where the grid's cells or trials run."""
    return typer.Option("local", "--executor", help=help)


def address(help: str = "Ray cluster address, e.g. ray://head:10001 (with --executor ray).") -> Any:
    """``--address``: a Ray cluster address."""
    return typer.Option(None, "--address", help=help)


def jobs(help: str) -> Any:
    """``--jobs/-j``: work items at once."""
    return typer.Option(1, "--jobs", "-j", help=help)


def plots() -> Any:
    """``--plots/--no-plots``: write the report's plots."""
    return typer.Option(True, "--plots/--no-plots", help="Write plots (needs matplotlib).")


def comma_list(text: str | None, what: str) -> list[str]:
    """The items of a comma-separated option value, blanks dropped; [] for an absent option (None).

    Raises UsageError naming ``--what`` when the option was given but lists nothing (``--seeds ,``).
    """
    from kmat_cli.errors import UsageError

    items = [x.strip() for x in (text or "").split(",") if x.strip()]
    if text is not None and not items:
        raise UsageError(f"--{what} '{text}': give a comma-separated list")
    return items


def parse_seeds(text: str) -> list[int]:
    """The integers of ``--seeds 1,2,3``; UsageError for an empty list or a non-integer."""
    from kmat_cli.errors import UsageError

    try:
        return [int(s) for s in comma_list(text, "seeds")]
    except ValueError as exc:
        raise UsageError(f"--seeds '{text}': expected integers like 1,2,3") from exc
