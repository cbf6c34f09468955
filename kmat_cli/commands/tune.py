"""``kmat tune``: a grid over config keys scored on the high-end validation split only."""

from __future__ import annotations

from pathlib import Path

import typer


def _seeds(text: str) -> list[int]:
    from kmat_cli.errors import UsageError

    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError as exc:
        raise UsageError(f"--seeds '{text}': expected integers like 1,2,3") from exc


def command(
    task: str = typer.Option(None, "--task", "-t", help="Task name (kmat list tasks). Default: phantom."),
    method: str = typer.Option(
        None, "--method", "-m", help="Method name (kmat list methods). Default: kmat."
    ),
    grid: list[str] = typer.Option(
        [],
        "--grid",
        "-g",
        help="KEY=V1,V2,... values of one config key (repeat for more keys; the grid is their product). "
        "Default: method.lambda1 and method.lambda2 each over 0.1,0.5,1,2,5.",
    ),
    seeds: str = typer.Option("1", "--seeds", help="Comma-separated seeds; the score is their mean."),
    metric: str = typer.Option("accuracy", "--metric", help="accuracy or macro_f1 (high-end validation)."),
    transport: str = typer.Option(
        None, "--transport", help="Transport loss: fgw, wasserstein, gw, none, ..."
    ),
    shots: int = typer.Option(None, "--shots", help="Labelled high-end images per class (default 16)."),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs (default 50)."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML config file (over the task's defaults)."),
    sets: list[str] = typer.Option([], "--set", help="Override any config key in every trial."),
    out: Path = typer.Option(
        None,
        "--out",
        "-o",
        help="Folder of the trials, tune.csv and best.yaml (default runs/tune/TASK-METHOD).",
    ),
    executor: str = typer.Option("local", "--executor", help="local or ray."),
    address: str = typer.Option(None, "--address", help="Ray cluster address (with --executor ray)."),
    jobs: int = typer.Option(
        1, "--jobs", "-j", help="Parallel workers (local process pool or Ray CPUs); 1 runs in this process."
    ),
    output: Path = typer.Option(None, "--output", help="Also write the best config to this YAML file."),
) -> None:
    """Tune config values on the high-end validation split only (low-end images are never read) and write
    the best point as a config file for `kmat train --config`. Finished trials are reused on a rerun.

    Example: kmat tune --task phantom --grid method.lambda1=0.1,1,10 --grid method.lambda2=0,0.5,1
    """
    from kmat_cli.experiments import tune

    flags = {
        "task.name": task,
        "method.name": method,
        "transport.name": transport,
        "train.shots": shots,
        "train.epochs": epochs,
    }
    result = tune.tune(
        flags=flags,
        grid=tune.parse_grid(grid),
        seeds=_seeds(seeds),
        sets=sets,
        config_file=config,
        out=out,
        metric=metric,
        executor=executor,
        address=address,
        jobs=jobs,
        output=output,
    )
    tune.render(result)
