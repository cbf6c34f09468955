"""The one trainer of every method: sampling order, batching, optimizer, schedule, AMP, checkpoints, logs.

A method (:class:`kmat_cli.methods.base.Method`) owns its parameters and loss terms; the trainer owns the
rest and knows nothing about any particular method. Inputs are the frozen image features of the few-shot
set (computed once, from the feature cache) and their labels; the trainer never sees an image.

Schedule (the CoOp/Dassl recipe, per epoch e = 0 .. E-1, W = min(warmup_epochs, floor(E / 10)) warm-up
epochs: the warm-up takes at most a tenth of the run, so a short run is not all warm-up; 50 epochs keep 1):
    lr_e = warmup_lr                                         for e < W
    lr_e = lr * (1 + cos(pi * (e - W) / E)) / 2              otherwise ("cosine"; "constant": lr)
Batches: a permutation of the N few-shot samples drawn from a generator seeded by (seed, epoch); the last
incomplete batch is dropped when N >= batch size. With augmented views cached ((N, V, D) features), each
sample uses one view per epoch, drawn from the same generator. Seeding that depends only on (seed, epoch)
makes a resumed run continue exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from kmat_cli import atomic, checkpoint
from kmat_cli.errors import RuntimeFailure, UsageError
from kmat_cli.prompts import mixed_precision
from kmat_cli.runconfig import OPTIMIZERS
from kmat_cli.runs import Run

if TYPE_CHECKING:
    from kmat_cli.methods.base import Method


def lr_at(
    epoch: int,
    *,
    lr: float,
    epochs: int,
    warmup_epochs: int = 0,
    warmup_lr: float = 0.0,
    scheduler: str = "cosine",
) -> float:
    """The learning rate of 0-based ``epoch`` (see the module docstring: at most ``epochs // 10`` epochs of
    warm-up)."""
    warmup_epochs = min(warmup_epochs, epochs // 10)
    if epoch < warmup_epochs:
        return warmup_lr
    if scheduler == "constant":
        return lr
    if scheduler == "cosine":
        return 0.5 * lr * (1.0 + math.cos(math.pi * (epoch - warmup_epochs) / max(1, epochs)))
    raise UsageError(f"train.scheduler '{scheduler}' is unknown; use cosine or constant")


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's batch order (depends only on the seed and the epoch)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def make_optimizer(params: list[torch.nn.Parameter], cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay) from ``cfg`` (the ``train`` section)."""
    if cfg["optimizer"] not in OPTIMIZERS:
        raise UsageError(f"train.optimizer '{cfg['optimizer']}' is unknown; use {' or '.join(OPTIMIZERS)}")
    return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bfloat16 on CUDA devices that support it, float16 (with loss scaling) on older ones, None on CPU."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class Trainer:
    """Trains ``method`` on cached features; ``folder`` (a run folder) receives checkpoints and metrics.

    ``features``: (N, D) or (N, V, D) image features of the few-shot set; ``labels``: (N,) class indices;
    ``cfg``: the ``train`` config section.
    """

    def __init__(
        self,
        method: Method,
        features: torch.Tensor,
        labels: torch.Tensor,
        cfg: Mapping[str, Any],
        *,
        device: torch.device,
        folder: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        if features.shape[0] != labels.shape[0] or features.shape[0] == 0:
            raise UsageError(f"need one label per feature row, got {features.shape[0]} and {labels.shape[0]}")
        self.method = method
        self.features = features.to(device)
        self.labels = labels.to(device)
        self.cfg = dict(cfg)
        self.device = device
        self.folder = Path(folder) if folder is not None else None
        self.progress = progress
        self.params = [p for p in method.parameters() if p.requires_grad]
        self.optimizer = make_optimizer(self.params, self.cfg) if self.params else None
        self.amp = amp_dtype(device, bool(self.cfg.get("amp", True)))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp is torch.float16)
        self.history: list[dict[str, Any]] = []
        self.epoch = 0

    # ------------------------------------------------------------------------------------- checkpoints
    def resume(self) -> int:
        """Load the folder's checkpoint (method, its solver state, optimizer, scaler, RNG, history); returns
        its epoch."""
        if self.folder is None or not checkpoint.exists(self.folder):
            return 0
        ckpt = checkpoint.restore(self.folder, self.method, self.optimizer, self.scaler, resume=True)
        if hasattr(self.method, "load_solver_state"):
            self.method.load_solver_state(ckpt.solver)
        self.history = list(ckpt.history)
        self.epoch = ckpt.epoch
        self._write_metrics()
        return self.epoch

    def save(self) -> None:
        if self.folder is None:
            return
        checkpoint.save(
            self.folder,
            epoch=self.epoch,
            method=self.method.state_dict(),
            optimizer=self.optimizer.state_dict() if self.optimizer is not None else None,
            scaler=self.scaler.state_dict() if self.scaler.is_enabled() else None,
            scheduler={"epoch": self.epoch, "kind": self.cfg["scheduler"]},
            history=self.history,
            solver=self.method.solver_state() if hasattr(self.method, "solver_state") else None,
        )
        self._write_metrics()

    def _write_metrics(self) -> None:
        if self.folder is not None:
            text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in self.history)
            atomic.write_text(self.folder / Run.HISTORY, text)

    # -------------------------------------------------------------------------------------- training
    def lr(self, epoch: int) -> float:
        c = self.cfg
        return lr_at(
            epoch,
            lr=c["lr"],
            epochs=c["epochs"],
            warmup_epochs=c["warmup_epochs"],
            warmup_lr=c["warmup_lr"],
            scheduler=c["scheduler"],
        )

    def batches(self, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The (features, labels) batches of one epoch."""
        n, bs = self.labels.shape[0], int(self.cfg["batch_size"])
        if bs < 1:
            raise UsageError(f"train.batch_size must be at least 1, got {bs}")
        g = epoch_generator(int(self.cfg["seed"]), epoch)
        order = torch.randperm(n, generator=g)
        feats = self.features
        if feats.dim() == 3:  # cached augmented views: one per sample and epoch
            view = torch.randint(0, feats.shape[1], (n,), generator=g).to(feats.device)
            feats = feats[torch.arange(n, device=feats.device), view]
        order = order.to(feats.device)
        stop = n - n % bs if n >= bs else n
        return [(feats[order[i : i + bs]], self.labels[order[i : i + bs]]) for i in range(0, stop, bs)]

    def step(self, features: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """One optimisation step; returns every loss term (and their sum, ``loss``) as floats."""
        with mixed_precision(self.amp):
            terms = self.method.losses(features, labels)
        loss = torch.stack([t.float() for t in terms.values()]).sum()
        if not torch.isfinite(loss):
            raise RuntimeFailure(
                f"the training loss became {loss.item()} at epoch {self.epoch + 1}; lower train.lr or the lambdas"
            )
        assert self.optimizer is not None, "a method without parameters is never stepped"
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        out = {k: float(v.detach()) for k, v in terms.items()}
        out["loss"] = float(loss.detach())
        return out

    def fit(self) -> list[dict[str, Any]]:
        """Train from ``self.epoch`` to ``cfg["epochs"]``, checkpointing after every epoch; returns the
        per-epoch history (epoch, lr, loss, losses by term, time, step_time)."""
        epochs = int(self.cfg["epochs"])
        if self.optimizer is None or self.epoch >= epochs:
            return self.history
        self.method.train()
        with _progress(self.progress, epochs, self.epoch) as bar, _WarningTally() as tally:
            while self.epoch < epochs:
                start = time.perf_counter()
                lr = self.lr(self.epoch)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                sums: dict[str, float] = {}
                batches = self.batches(self.epoch)
                for feats, labels in batches:
                    for k, v in self.step(feats, labels).items():
                        sums[k] = sums.get(k, 0.0) + v
                seconds = time.perf_counter() - start
                n_warnings = tally.new()
                n = max(1, len(batches))
                record = {
                    "epoch": self.epoch + 1,
                    "lr": lr,
                    "loss": sums.pop("loss", 0.0) / n,
                    "losses": {k: v / n for k, v in sums.items()},
                    "steps": len(batches),
                    "time": seconds,
                    "step_time": seconds / n,
                }
                if n_warnings:
                    record["warnings"] = n_warnings
                self.epoch += 1
                self.history.append(record)
                self.save()
                bar(record)
        self.method.eval()
        return self.history


class _WarningTally:
    """Collects warnings raised during training (e.g. a transport solver's non-convergence at some steps)
    and reports each kind once at the end, with its count, instead of once per step."""

    def __enter__(self) -> _WarningTally:
        self._ctx = warnings.catch_warnings(record=True)
        self.caught = self._ctx.__enter__()
        warnings.simplefilter("always")
        self.seen = 0
        return self

    def new(self) -> int:
        """How many warnings arrived since the last call."""
        n, self.seen = len(self.caught) - self.seen, len(self.caught)
        return n

    def __exit__(self, *exc: Any) -> None:
        self._ctx.__exit__(*exc)
        kinds: dict[tuple[str, str], list[str]] = {}
        for w in self.caught:
            head = str(w.message).split(":")[0]
            kinds.setdefault((w.category.__name__, head), []).append(str(w.message))
        for (category, _), messages in kinds.items():
            more = f" ({len(messages)} times during training; first shown)" if len(messages) > 1 else ""
            print(f"kmat: {category}: {messages[0]}{more}", file=sys.stderr)


def epoch_line(record: Mapping[str, Any], total: int, elapsed: float) -> str:
    """The progress line of one finished epoch, for logs: ``kmat: epoch 3/50 loss 1.2345 lr 0.0025 4.1 s``."""
    return (
        f"kmat: epoch {record['epoch']}/{total} loss {record['loss']:.4f} lr {record['lr']:.6g} "
        f"{elapsed:.1f} s"
    )


@contextlib.contextmanager
def _progress(enabled: bool, total: int, done: int):
    """Progress on stderr: a rich bar on a terminal, one :func:`epoch_line` per epoch otherwise (logs of
    nohup, SLURM, CI); a no-op callable when disabled or with ``KMAT_NO_PROGRESS``."""
    if not enabled or os.environ.get("KMAT_NO_PROGRESS"):
        yield lambda record: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        started = time.perf_counter()
        yield lambda record: print(
            epoch_line(record, total, time.perf_counter() - started), file=sys.stderr, flush=True
        )
        return
    columns = (
        TextColumn("train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("train", total=total, completed=done, loss="")
        yield lambda record: progress.update(task, advance=1, loss=f"loss {record['loss']:.4f}")
