"""``kmat benchmark``: the Table 2 / Table 3 grid in one command, and ``kmat benchmark merge`` for shards.

A command group: the grid options belong to ``kmat benchmark`` itself, and ``merge`` is a subcommand
with its own arguments (shard folders), so neither's ``--help`` lists the other's options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kmat_cli.commands import _options as options
from kmat_cli.experiments.variants import METHODS

ALL_METHODS = ",".join(METHODS)  # --methods default: every method of the grid

app = typer.Typer(
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _methods_section(markdown: str) -> str:
    """The methods table section of a report (all of it when it has none)."""
    head = "## Methods"
    if head not in markdown:
        return markdown
    section = markdown[markdown.index(head) :]
    end = section.find("\n## ", len(head))
    return section if end < 0 else section[:end] + "\n"


def _finish(markdown_path: Path, outcomes: list, *, summary: bool = False) -> None:
    markdown = markdown_path.read_text(encoding="utf-8")
    typer.echo(_methods_section(markdown) if summary else markdown)
    typer.echo(f"report: {markdown_path}")
    typer.echo(f"csv: {markdown_path.with_suffix('.csv')}")
    bad = [o for o in outcomes if o.status in ("failed", "missing")]
    if bad:
        typer.echo(f"kmat: {len({o.cell.key for o in bad})} cells did not finish (see the report)", err=True)
        raise typer.Exit(1)


@app.callback(invoke_without_command=True)
def benchmark_grid(
    ctx: typer.Context,
    task: Annotated[str | None, options.task("Task(s), comma-separated: chest,breast.")] = None,
    methods: options.Methods = ALL_METHODS,
    seeds: options.Seeds = "1,2,3",
    ablation: Annotated[
        bool,
        typer.Option(
            "--ablation",
            help="Also the K-MaT ablation (Table 3): CE only, +CSC/MSC, +anchor, +transport.",
        ),
    ] = False,
    defaults_rule: Annotated[
        bool,
        typer.Option(
            "--defaults-rule",
            help="Also the candidates of K-MaT's defaults rule (alpha x center x normalize, docs/defaults.md) "
            "and the rule's outcome.",
        ),
    ] = False,
    knowledge: Annotated[
        str | None,
        typer.Option(
            "--knowledge",
            help="Knowledge regimes of the low-end descriptions, comma-separated (shipped, partial, pooled, "
            "generic, shuffled): an axis of the grid, with fixed K-MaT configurations without its agreement "
            "rule as extra rows (--vary knowledge.regime=... gives the axis alone).",
        ),
    ] = None,
    vary: Annotated[
        list[str] | None,
        typer.Option(
            "--vary", help="Another axis of the grid: --vary task.seed=0,1,11,23 (a block per value)."
        ),
    ] = None,
    transport: Annotated[
        str | None, options.transport("Transport of K-MaT: fgw, wasserstein, gw, none.")
    ] = None,
    backbone: options.Backbone = None,
    shots: options.Shots = None,
    epochs: options.Epochs = None,
    device: options.Device = None,
    config: Annotated[Path | None, options.config("YAML config file applied to every cell.")] = None,
    sets: Annotated[
        list[str] | None, options.sets("Override a config key in every cell: --set train.lr=0.002")
    ] = None,
    out: Annotated[
        Path | None,
        options.out(
            "Benchmark folder (default runs/benchmark/<tasks>, or <tasks>-2, ... when that holds another grid)."
        ),
    ] = None,
    executor: options.Executor = "local",
    address: options.Address = None,
    shard_index: Annotated[
        int, typer.Option("--shard-index", help="Run only this shard of the grid (0-based).")
    ] = 0,
    num_shards: Annotated[
        int, typer.Option("--num-shards", help="Number of shards the grid is split into.")
    ] = 1,
    jobs: Annotated[int, options.jobs("Cells run at once (worker processes; Ray: CPUs of a local Ray).")] = 1,
    plots: options.Plots = True,
    summary: Annotated[
        bool,
        typer.Option("--summary", help="Print only the methods table (report.md is still written in full)."),
    ] = False,
) -> None:
    """Run the methods x seeds grid (Table 2; Table 3 with --ablation) and write report.md, report.csv.

    Every (task, method, seed) cell trains once, reusing cached image features; finished cells are read
    back, not recomputed; a failed cell is reported and the grid goes on (exit code 1).

    Example: kmat benchmark --task phantom --methods zeroshot,coop,kmat --seeds 1,2,3 --ablation

    Shards: kmat benchmark ... --shard-index 0 --num-shards 2 --out s0 (and 1 ... --out s1), then
    kmat benchmark merge s0 s1 --out merged.
    """
    if ctx.invoked_subcommand is not None:
        return
    from kmat_cli.errors import UsageError
    from kmat_cli.experiments import benchmark

    options.check_folder(out)
    tasks = options.comma_list(task, "task")
    if not tasks:
        raise UsageError("kmat benchmark needs --task, e.g. --task phantom")
    if executor == "ray":
        from kmat_cli.experiments.runner import require_ray

        require_ray()
    if address and executor != "ray":
        raise UsageError("--address needs --executor ray")
    flags = {
        "transport.name": transport,
        "backbone.name": backbone,
        "train.shots": shots,
        "train.epochs": epochs,
        "train.device": device,
    }
    from kmat_cli.experiments import axes

    grid_axes = axes.parse_vary(vary or ())
    if knowledge is not None:
        if any(k == axes.KNOWLEDGE for k, _ in grid_axes):
            raise UsageError(
                f"give the knowledge regimes with --knowledge or --vary {axes.KNOWLEDGE}, not both"
            )
        grid_axes += ((axes.KNOWLEDGE, tuple(options.comma_list(knowledge, "knowledge"))),)
    request = benchmark.Request(
        tasks=tuple(tasks),
        methods=tuple(options.comma_list(methods, "methods")),
        seeds=tuple(options.parse_seeds(seeds)),
        ablation=ablation,
        defaults_rule=defaults_rule,
        flags=benchmark.common_flags(config, flags),
        sets=tuple(sets or ()),
        axes=grid_axes,
        knowledge_rows=knowledge is not None,
    )
    folder = out or benchmark.choose_folder(request, tasks)
    if out is None and folder != benchmark.default_out(tasks):
        from kmat_cli.progress import say

        say(f"{benchmark.default_out(tasks)} holds another benchmark; writing to {folder}")
    plan, outcomes = benchmark.run(
        request,
        folder,
        executor=executor,
        address=address,
        shard_index=shard_index,
        num_shards=num_shards,
        jobs=jobs,
    )
    _finish(benchmark.write_report(plan, outcomes, folder, plots=plots), outcomes, summary=summary)


@app.command("merge")
def merge(
    shards: Annotated[
        list[Path], typer.Argument(help="Shard folders (each ran --shard-index i --num-shards n).")
    ],
    out: Annotated[Path, options.out("Folder of the merged report.")],
    plots: options.Plots = True,
) -> None:
    """Build one report from the folders of a sharded benchmark.

    Example: kmat benchmark merge runs/shard-0 runs/shard-1 --out runs/benchmark/merged
    """
    from kmat_cli.experiments import benchmark

    plan, outcomes = benchmark.merge(shards, out)
    _finish(benchmark.write_report(plan, outcomes, out, plots=plots), outcomes)
