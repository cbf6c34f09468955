"""The options several ``kmat`` commands share, declared once: a flag means the same (name, short name,
type, default) in every command that takes it.

Commands declare their parameters in Typer's ``Annotated`` style, the annotation carrying the type and the
flag, the default being the parameter's own: ``task: options.Task = None``. Each shared option has

- a declaration, ``task(help=...)``: the Typer ``OptionInfo`` (names, short name) with its help text, for a
  command whose wording differs (``task: Annotated[str | None, options.task("Task(s), comma-separated.")]``,
  ``--task`` of ``kmat benchmark`` takes a list);
- an alias, ``Task``: the true type (``str | None`` where the option may be absent) annotated with the
  declaration in its usual wording.

A short name means one thing across kmat: ``-t`` task, ``-m`` method(s), ``-b`` backbone, ``-c`` config,
``-o`` the file a command writes (``--output``), ``-j`` jobs. A folder a command writes is ``--out`` (no
short name), so ``-o best.yaml`` can never create a folder named like a file.

Also the parsers of the list-valued options (``--seeds 1,2,3``, ``--task chest,breast``), so that every
command reads and rejects them alike. Light at import time (Typer only), like every command module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.models import ArgumentInfo, OptionInfo

DEVICE_HELP = "auto, cpu, cuda, cuda:N or mps."
THREADS_HELP = "torch CPU threads (default: $OMP_NUM_THREADS, else the cores not busy)."


def task(help: str = "Task name (kmat list tasks). Default: phantom.") -> OptionInfo:
    """``--task/-t``: a task name (a comma-separated list where ``help`` says so)."""
    return typer.Option("--task", "-t", help=help)


def method() -> OptionInfo:
    """``--method/-m``: one method name."""
    return typer.Option("--method", "-m", help="Method name (kmat list methods). Default: kmat.")


def methods() -> OptionInfo:
    """``--methods/-m``: a comma-separated list of method names (read it with :func:`comma_list`)."""
    return typer.Option("--methods", "-m", help="Methods, comma-separated.")


def transport(help: str = "Transport loss: fgw, wasserstein, gw, none, ...") -> OptionInfo:
    """``--transport``: the transport of K-MaT."""
    return typer.Option("--transport", help=help)


def backbone() -> OptionInfo:
    """``--backbone/-b``: a backbone name."""
    return typer.Option("--backbone", "-b", help="Backbone name (kmat list backbones).")


def shots() -> OptionInfo:
    """``--shots``: labelled high-end images per class."""
    return typer.Option("--shots", help="Labelled high-end images per class (default 16).")


def epochs() -> OptionInfo:
    """``--epochs``: training epochs."""
    return typer.Option("--epochs", help="Training epochs (default 50).")


def seed(help: str = "Seed of the few-shot draw and the initialisation.") -> OptionInfo:
    """``--seed``: one seed."""
    return typer.Option("--seed", help=help)


def seeds(help: str = "Seeds, comma-separated.") -> OptionInfo:
    """``--seeds``: comma-separated seeds (read them with :func:`parse_seeds`)."""
    return typer.Option("--seeds", help=help)


def device(help: str = DEVICE_HELP) -> OptionInfo:
    """``--device``: where torch runs (None: the config's ``train.device``)."""
    return typer.Option("--device", help=help)


def threads(help: str = THREADS_HELP) -> OptionInfo:
    """``--threads``: torch CPU threads."""
    return typer.Option("--threads", help=help)


def config(help: str = "YAML config file (over the task's defaults).") -> OptionInfo:
    """``--config/-c``: a YAML config file."""
    return typer.Option("--config", "-c", help=help)


def sets(help: str = "Override any config key: --set method.lambda1=2") -> OptionInfo:
    """``--set KEY=VALUE``, repeatable: config overrides (None when none is given)."""
    return typer.Option("--set", help=help)


def out(help: str) -> OptionInfo:
    """``--out``: the folder a command writes (no short name: ``-o`` is a file, :func:`output`); required
    where the parameter has no default."""
    return typer.Option("--out", help=help)


def output(help: str) -> OptionInfo:
    """``--output/-o``: the file a command writes its result to."""
    return typer.Option("--output", "-o", help=help)


def as_json(help: str) -> OptionInfo:
    """``--json``: print JSON on stdout instead of the table or path."""
    return typer.Option("--json", help=help)


def executor() -> OptionInfo:
    """``--executor``: where the grid's cells or trials run."""
    return typer.Option("--executor", help="local, or ray (the 'distributed' extra).")


def address() -> OptionInfo:
    """``--address``: a Ray cluster address."""
    return typer.Option("--address", help="Ray cluster address, e.g. ray://head:10001 (with --executor ray).")


def jobs(help: str) -> OptionInfo:
    """``--jobs/-j``: work items at once."""
    return typer.Option("--jobs", "-j", help=help)


def plots() -> OptionInfo:
    """``--plots/--no-plots``: write the report's plots."""
    return typer.Option("--plots/--no-plots", help="Write plots (needs matplotlib).")


def run_folder() -> ArgumentInfo:
    """``RUN``: a run folder argument."""
    return typer.Argument(help="A run folder made by `kmat train`.")


# The options in their usual wording: `name: Alias = default`.
Task = Annotated[str | None, task()]
Method = Annotated[str | None, method()]
Methods = Annotated[str, methods()]
Transport = Annotated[str | None, transport()]
Backbone = Annotated[str | None, backbone()]
Shots = Annotated[int | None, shots()]
Epochs = Annotated[int | None, epochs()]
Seed = Annotated[int | None, seed()]
Seeds = Annotated[str, seeds()]
Device = Annotated[str | None, device()]
Threads = Annotated[int | None, threads()]
Config = Annotated[Path | None, config()]
Sets = Annotated[list[str] | None, sets()]
Executor = Annotated[str, executor()]
Address = Annotated[str | None, address()]
Plots = Annotated[bool, plots()]
RunFolder = Annotated[Path, run_folder()]


def check_folder(out: Path | None) -> None:
    """A one-line UsageError when a folder option (``--out``) is named like a file the command could write
    instead (``.yaml``, ``.json``, ``.csv``, ...): the user meant ``--output``."""
    from kmat_cli.errors import UsageError

    suffix = Path(str(out)).suffix.lower() if out is not None else ""
    if suffix in (".yaml", ".yml", ".json", ".jsonl", ".csv", ".md", ".safetensors", ".txt"):
        raise UsageError(f"--out {out} is a folder; to write a file, use --output {out} (-o)")


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
