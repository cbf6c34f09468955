"""``kmat train``: learn prompts on the high-end train split of a task; a run folder comes out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kmat_cli.commands import _options as options

EPILOG = (
    "K-MaT keys (--set KEY=VALUE; docs/method.md, defaults: docs/defaults.md):\n\n"
    "method.description_template: text through which descriptions become anchor prototypes; "
    "{modality} = the prompts' modality words, '{description}' = the literal reading.\n\n"
    "method.lambda1, method.lambda2: weights of the anchor and transport losses.\n\n"
    "method.anchor, method.transport, method.csc, method.msc: ablation switches.\n\n"
    "transport.alpha: weight of the structure term of FGW (0: Wasserstein, 1: Gromov-Wasserstein).\n\n"
    "transport.center: feature cost between centred embeddings (a modality gap costs nothing).\n\n"
    "transport.normalize: every cost matrix divided by its mean (a difference in spread costs nothing)."
)


def command(
    task: options.Task = None,
    method: options.Method = None,
    transport: options.Transport = None,
    backbone: options.Backbone = None,
    shots: options.Shots = None,
    seed: options.Seed = None,
    epochs: options.Epochs = None,
    device: Annotated[
        str | None, options.device("auto, cpu, cuda, cuda:N or mps (with --resume: where to continue).")
    ] = None,
    descriptions: Annotated[
        Path | None, typer.Option("--descriptions", help="Descriptions JSON replacing the task's.")
    ] = None,
    config: options.Config = None,
    sets: options.Sets = None,
    out: Annotated[Path | None, options.out("Root folder of run folders (default runs/).")] = None,
    threads: options.Threads = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Continue a killed run folder to the same result, with its saved config.yaml; only --device, "
            "--threads and --evaluate/--no-evaluate may be given with it.",
        ),
    ] = None,
    evaluate: Annotated[
        bool, typer.Option("--evaluate/--no-evaluate", help="Evaluate on both test splits.")
    ] = True,
    as_json: Annotated[
        bool, options.as_json("Print {run, metrics} as JSON on stdout instead of the run folder.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also show the label-free check at initialisation (always in checks.json).",
        ),
    ] = False,
) -> None:
    """Train prompts with a method on a task and save the run (config, checkpoints, prompts, metrics).

    Prints the run folder on stdout (RUN=$(kmat train ...)); progress and the metrics table go to stderr.

    Example: kmat train --task phantom --transport fgw --shots 16 --seed 1
    """
    import json

    from kmat_cli import session

    options.check_folder(out)
    given: dict[str, Any] = {
        "transport": transport,
        "backbone": backbone,
        "shots": shots,
        "epochs": epochs,
        "device": device,
        "threads": threads,
        "descriptions": descriptions,
        "out": out,
    }
    run = session.train(
        task,
        method,
        seed,
        config=config,
        sets=sets or (),
        resume=resume,
        evaluate=evaluate,
        progress=True,
        show=not as_json,
        verbose=verbose,
        **{k: v for k, v in given.items() if v is not None},
    )
    if as_json:
        typer.echo(json.dumps({"run": str(run.path), "metrics": run.metrics}, indent=2))
    else:
        typer.echo(str(run.path))
