"""``kmat benchmark``: the Table 2 / Table 3 grid in one command, and ``kmat benchmark merge`` for shards.

A command group: the grid options belong to ``kmat benchmark`` itself, and ``merge`` is a subcommand
with its own arguments (shard folders), so neither's ``--help`` lists the other's options.
"""

from __future__ import annotations

from pathlib import Path

import typer

from kmat_cli.experiments.variants import METHODS

app = typer.Typer(
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _split(text: str | None, what: str) -> list[str]:
    from kmat_cli.errors import UsageError

    items = [x.strip() for x in (text or "").split(",") if x.strip()]
    if text is not None and not items:
        raise UsageError(f"--{what} '{text}': give a comma-separated list")
    return items


def _seeds(text: str) -> list[int]:
    from kmat_cli.errors import UsageError

    try:
        return [int(s) for s in _split(text, "seeds")]
    except ValueError as exc:
        raise UsageError(f"--seeds '{text}': expected integers like 1,2,3") from exc


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
    task: str = typer.Option(None, "--task", "-t", help="Task(s), comma-separated: chest,breast."),
    methods: str = typer.Option(",".join(METHODS), "--methods", "-m", help="Methods, comma-separated."),
    seeds: str = typer.Option("1,2,3", "--seeds", help="Seeds, comma-separated."),
    ablation: bool = typer.Option(
        False, "--ablation", help="Also the K-MaT ablation (Table 3): CE only, +CSC/MSC, +anchor, +transport."
    ),
    defaults_rule: bool = typer.Option(
        False,
        "--defaults-rule",
        help="Also the candidates of K-MaT's defaults rule (alpha x center x normalize, docs/defaults.md) "
        "and the rule's outcome.",
    ),
    transport: str = typer.Option(
        None, "--transport", help="Transport of K-MaT: fgw, wasserstein, gw, none."
    ),
    backbone: str = typer.Option(None, "--backbone", "-b", help="Backbone name (kmat list backbones)."),
    shots: int = typer.Option(None, "--shots", help="Labelled high-end images per class (default 16)."),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs (default 50)."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML config file applied to every cell."),
    sets: list[str] = typer.Option(
        [], "--set", help="Override a config key in every cell: --set train.lr=0.002"
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Benchmark folder (default runs/benchmark/<tasks>)."),
    executor: str = typer.Option("local", "--executor", help="local, or ray (the 'distributed' extra)."),
    address: str = typer.Option(None, "--address", help="Ray cluster address, e.g. ray://head:10001."),
    shard_index: int = typer.Option(0, "--shard-index", help="Run only this shard of the grid (0-based)."),
    num_shards: int = typer.Option(1, "--num-shards", help="Number of shards the grid is split into."),
    jobs: int = typer.Option(
        1, "--jobs", "-j", help="Cells run at once (worker processes; Ray: CPUs of a local Ray)."
    ),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write plots (needs matplotlib)."),
    summary: bool = typer.Option(
        False, "--summary", help="Print only the methods table (report.md is still written in full)."
    ),
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

    tasks = _split(task, "task")
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
    request = benchmark.Request(
        tasks=tuple(tasks),
        methods=tuple(_split(methods, "methods")),
        seeds=tuple(_seeds(seeds)),
        ablation=ablation,
        defaults_rule=defaults_rule,
        flags=benchmark.common_flags(config, flags),
        sets=tuple(sets),
    )
    folder = out or benchmark.default_out(tasks)
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
    shards: list[Path] = typer.Argument(..., help="Shard folders (each ran --shard-index i --num-shards n)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder of the merged report."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Write plots (needs matplotlib)."),
) -> None:
    """Build one report from the folders of a sharded benchmark.

    Example: kmat benchmark merge runs/shard-0 runs/shard-1 --out runs/benchmark/merged
    """
    from kmat_cli.experiments import benchmark

    plan, outcomes = benchmark.merge(shards, out)
    _finish(benchmark.write_report(plan, outcomes, out, plots=plots), outcomes)
