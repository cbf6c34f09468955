"""``kmat train``: learn prompts on the high-end train split of a task; a run folder comes out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    task: str = options.task(),
    method: str = options.method(),
    transport: str = options.transport(),
    backbone: str = options.backbone(),
    shots: int = options.shots(),
    seed: int = options.seed(),
    epochs: int = options.epochs(),
    device: str = options.device("auto, cpu, cuda, cuda:N or mps (with --resume: where to continue)."),
    descriptions: Path = typer.Option(None, "--descriptions", help="Descriptions JSON replacing the task's."),
    config: Path = options.config(),
    sets: list[str] = options.sets(),
    out: Path = options.out("Root folder of run folders (default runs/)."),
    threads: int = options.threads(),
    resume: Path = typer.Option(
        None,
        "--resume",
        help="Continue a killed run folder to the same result, with its saved config.yaml; only --device, "
        "--threads and --evaluate/--no-evaluate may be given with it.",
    ),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Evaluate on both test splits."),
    as_json: bool = options.as_json("Print {run, metrics} as JSON on stdout instead of the run folder."),
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        help="Also show the label-free check at initialisation (always in checks.json).",
    ),
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
        sets=sets,
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
