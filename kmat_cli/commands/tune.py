"""``kmat tune``: a grid over config keys scored on the high-end validation split only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kmat_cli.commands import _options as options


def command(
    task: options.Task = None,
    method: options.Method = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            "-g",
            help="KEY=V1,V2,... values of one config key (repeat for more keys; the grid is their product). "
            "Default: method.lambda1 and method.lambda2 each over 0.1,0.5,1,2,5.",
        ),
    ] = None,
    seeds: Annotated[str, options.seeds("Comma-separated seeds; the score is their mean.")] = "1",
    metric: Annotated[
        str, typer.Option("--metric", help="accuracy or macro_f1 (high-end validation).")
    ] = "accuracy",
    transport: options.Transport = None,
    backbone: options.Backbone = None,
    shots: options.Shots = None,
    epochs: options.Epochs = None,
    device: options.Device = None,
    config: options.Config = None,
    sets: Annotated[list[str] | None, options.sets("Override any config key in every trial.")] = None,
    out: Annotated[
        Path | None,
        options.out("Folder of the trials, tune.csv and best.yaml (default runs/tune/TASK-METHOD)."),
    ] = None,
    executor: options.Executor = "local",
    address: options.Address = None,
    jobs: Annotated[
        int, options.jobs("Parallel workers (local process pool or Ray CPUs); 1 runs in this process.")
    ] = 1,
    output: Annotated[Path | None, options.output("Also write the best config to this YAML file.")] = None,
) -> None:
    """Tune config values on the high-end validation split only (low-end images are never read) and write
    the best point as a config file for `kmat train --config`. Finished trials are reused on a rerun.

    Example: kmat tune --task phantom --grid method.lambda1=0.1,1,10 --grid method.lambda2=0,0.5,1
    """
    from kmat_cli.experiments import tune

    options.check_folder(out)
    flags = {
        "task.name": task,
        "method.name": method,
        "transport.name": transport,
        "backbone.name": backbone,
        "train.shots": shots,
        "train.epochs": epochs,
        "train.device": device,
    }
    result = tune.tune(
        flags=flags,
        grid=tune.parse_grid(grid or ()),
        seeds=options.parse_seeds(seeds),
        sets=sets or (),
        config_file=config,
        out=out,
        metric=metric,
        executor=executor,
        address=address,
        jobs=jobs,
        output=output,
    )
    tune.render(result)
