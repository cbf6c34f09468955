"""``kmat data``: prepare a task's public datasets (``prepare``), check prepared data (``check``) and write a
small folder of a task's images to try ``kmat predict`` on (``sample``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kmat_cli.commands import _options as options

app = typer.Typer(
    name="data",
    help="Prepare the public datasets of a task, check prepared data, write sample images.\n\n"
    "Example: kmat data prepare breast --source ~/Downloads/DMID --source-lo ~/Downloads/Dataset_BUSI_with_GT",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _counts_table(title: str, counts: dict[str, dict[str, dict[str, int]]], class_names: list[str]) -> Any:
    """The counts per modality, class and split as a rich table; every user text in it shown literally
    (control characters escaped)."""
    from rich.markup import escape
    from rich.table import Table

    from kmat_cli.api import SPLITS, printable

    table = Table(title=escape(title), title_justify="left", show_edge=False, header_style="bold")
    table.add_column("modality")
    table.add_column("class")
    for split in SPLITS:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    for modality, splits in counts.items():
        for i, name in enumerate(class_names):
            row = [splits.get(s, {}).get(name, 0) for s in SPLITS]
            shown_name = escape(printable(name))
            table.add_row(escape(modality) if i == 0 else "", shown_name, *map(str, row), str(sum(row)))
        sums = [sum(splits.get(s, {}).values()) for s in SPLITS]
        table.add_row(
            "", "[bold]all[/bold]", *(f"[bold]{n}[/bold]" for n in sums), f"[bold]{sum(sums)}[/bold]"
        )
        table.add_section()
    return table


@app.command("prepare")
def prepare(
    task: Annotated[str, typer.Argument(help="Task name: skin1, skin2, chest or breast.")],
    source: Annotated[
        Path,
        typer.Option(
            "--source", "-s", help="Downloaded dataset folder (the high-end one for chest and breast)."
        ),
    ],
    source_lo: Annotated[
        Path | None,
        typer.Option("--source-lo", help="Downloaded low-end dataset folder (chest: X-ray, breast: BUSI)."),
    ] = None,
    out: Annotated[
        Path | None, options.out("Data root to write (default: $KMAT_DATA/<task> or the user data dir).")
    ] = None,
    seed: Annotated[int, options.seed("Seed of the split (and of CT slice sampling).")] = 0,
    copy: Annotated[
        bool,
        typer.Option("--copy/--symlink", help="Copy the images instead of symlinking them to the download."),
    ] = False,
) -> None:
    """Convert a task's downloaded public dataset(s) into kmat's split layout and report the counts.

    Example: kmat data prepare skin2 --source ~/Downloads/release_v0
    """
    from rich.console import Console
    from rich.markup import escape

    from kmat_cli import registry
    from kmat_cli.errors import UsageError

    cls = registry.get("tasks", task)
    if not callable(getattr(cls, "prepare", None)):
        raise UsageError(f"task '{task}' has no dataset converter; it reads its data as it is")
    err = Console(stderr=True)
    report = cls.prepare(
        source,
        source_lo=source_lo,
        out=out,
        seed=seed,
        copy=copy,
        log=lambda msg: err.print(msg, markup=False),
    )
    console = Console()
    title = f"{report['task']}: prepared in {report['root']} (seed {report['seed']}, {report['mode']})"
    console.print(_counts_table(title, report["counts"], list(cls.class_names)))
    if report["skipped"]:
        from rich.table import Table

        skipped = Table(title="left out", title_justify="left", show_edge=False, header_style="bold")
        skipped.add_column("reason")
        skipped.add_column("count", justify="right")
        skipped.add_column("examples")
        for entry in report["skipped"]:
            skipped.add_row(
                escape(entry["reason"]), str(entry["count"]), escape("; ".join(entry["examples"]))
            )
        console.print(skipped)
    for note in report["notes"]:
        console.print(f"note: {note}", markup=False)


@app.command("check")
def check(
    task: Annotated[str, typer.Argument(help="Task name or a custom task YAML file.")],
    root: Annotated[
        Path | None, typer.Option("--root", help="Data root (default: the task's own, task.root).")
    ] = None,
) -> None:
    """Load every split of a task (validating paths, labels and files) and show the counts.

    Example: kmat data check chest --root /data/kmat/chest
    """
    from rich.console import Console

    from kmat_cli import registry
    from kmat_cli.api import MODALITIES, SPLITS
    from kmat_cli.config import plugin_options
    from kmat_cli.errors import UsageError

    cls = registry.get("tasks", task)
    if root is not None and "root" not in plugin_options(cls):
        raise UsageError(f"task '{task}' has no 'root' option; drop --root")
    instance = cls(root=str(root)) if root is not None else cls()
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for modality in MODALITIES:
        counts[modality] = {}
        for split in SPLITS:
            samples = instance.split(modality, split)
            counts[modality][split] = {
                name: sum(1 for s in samples if s.label == i) for i, name in enumerate(instance.class_names)
            }
    Console().print(_counts_table(f"{instance.name}: all splits load", counts, list(instance.class_names)))


@app.command("sample")
def sample(
    out: Annotated[Path, options.out("New folder to write the images to.")],
    task: Annotated[
        str | None, options.task("Task whose images to copy (default: phantom, generated offline).")
    ] = None,
    modality: Annotated[str, typer.Option("--modality", help="lo (the deployment side) or hi.")] = "lo",
    per_class: Annotated[int, typer.Option("--per-class", "-n", help="Images per class.")] = 1,
) -> None:
    """Copy a few test images per class of a task into a new folder, to try `kmat predict` on.

    Files are named <n>-<class>.<ext>, so a prediction can be checked by eye. Prints the folder on stdout.

    Example: kmat data sample --out scans/
    """
    from kmat_cli import session
    from kmat_cli.progress import say

    files = session.sample_images(out, task=task or "phantom", modality=modality, per_class=per_class)
    side = "low-end" if modality == "lo" else "high-end"
    say(f"wrote {len(files)} {side} test images of {task or 'phantom'} ({per_class} per class) to {out}")
    typer.echo(str(out))
