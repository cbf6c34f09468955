"""``kmat train``: learn prompts on the high-end train split of a task; a run folder comes out."""

from __future__ import annotations

from pathlib import Path

import typer

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
    task: str = typer.Option(None, "--task", "-t", help="Task name (kmat list tasks). Default: phantom."),
    method: str = typer.Option(
        None, "--method", "-m", help="Method name (kmat list methods). Default: kmat."
    ),
    transport: str = typer.Option(
        None, "--transport", help="Transport loss: fgw, wasserstein, gw, none, ..."
    ),
    backbone: str = typer.Option(None, "--backbone", "-b", help="Backbone name (kmat list backbones)."),
    shots: int = typer.Option(None, "--shots", help="Labelled high-end images per class (default 16)."),
    seed: int = typer.Option(None, "--seed", help="Seed of the few-shot draw and the initialisation."),
    epochs: int = typer.Option(None, "--epochs", help="Training epochs (default 50)."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    descriptions: Path = typer.Option(None, "--descriptions", help="Descriptions JSON replacing the task's."),
    config: Path = typer.Option(None, "--config", "-c", help="YAML config file (over the task's defaults)."),
    sets: list[str] = typer.Option([], "--set", help="Override any config key: --set method.lambda1=2"),
    out: Path = typer.Option(None, "--out", "-o", help="Root folder of run folders (default runs/)."),
    resume: Path = typer.Option(None, "--resume", help="Continue a killed run folder to the same result."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Evaluate on both test splits."),
) -> None:
    """Train prompts with a method on a task and save the run (config, checkpoints, prompts, metrics).

    Example: kmat train --task chest --transport fgw --shots 16 --seed 1
    """
    from kmat_cli import config as config_mod
    from kmat_cli import runs

    if resume is not None:
        run = runs.open_run(resume)
        if not run.file("config.yaml").is_file():
            from kmat_cli.errors import UsageError

            raise UsageError(
                f"{run.path}: stopped before its config.yaml was saved; nothing to resume, start anew"
            )
        cfg = config_mod.load_yaml(run.file("config.yaml"))
    else:
        flags = {
            "task.name": task,
            "method.name": method,
            "transport.name": transport,
            "backbone.name": backbone,
            "train.shots": shots,
            "train.seed": seed,
            "train.epochs": epochs,
            "train.device": device,
            "descriptions": str(descriptions) if descriptions else None,
            "out": str(out) if out else None,
        }
        cfg = config_mod.build(config_file=config, flags=flags, sets=sets)
        run = None
    from kmat_cli import workflow

    workflow.train_command(cfg, run=run, evaluate=evaluate)
