"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint of epoch e is ``checkpoint-<e>.safetensors`` (method parameters ``method.*``, optimizer
tensors ``optim.<param index>.<key>``, RNG states ``rng.*``, the method's solver state ``solver.*``) plus ``checkpoint.json`` (epoch, optimizer
hyper-parameters and non-tensor state, scheduler state, numpy/python RNG states, the per-epoch history).
The tensor file is written first and ``checkpoint.json`` (which names it) second, both atomically; the
previous tensor file is removed only after that, so a process killed at any instant leaves a consistent
checkpoint behind.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from kmat_cli import atomic
from kmat_cli.errors import UsageError
from kmat_cli.runs import Run

FORMAT = "kmat.checkpoint/v1"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the epoch it ends, method tensors, optimizer/scaler state, RNG, history."""

    epoch: int
    method: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    scheduler: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    solver: dict[str, torch.Tensor] = field(default_factory=dict)


def _optimizer_split(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        plain[str(idx)] = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                plain[str(idx)][key] = value
    return tensors, {"param_groups": state["param_groups"], "state": plain}


def _optimizer_join(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["state"].items()}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The torch (CPU and CUDA), numpy and python RNG states, split into tensors and JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    plain = {
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss],
    }
    return tensors, plain


def set_rng_state(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda][: torch.cuda.device_count()])
    if "numpy" in plain:
        kind, keys, pos, has_gauss, cached = plain["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "python" in plain:
        version, internal, gauss = plain["python"]
        random.setstate((version, tuple(internal), gauss))


def save(
    folder: str | Path,
    *,
    epoch: int,
    method: dict[str, torch.Tensor],
    optimizer: dict[str, Any] | None = None,
    scaler: dict[str, Any] | None = None,
    scheduler: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    solver: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write the checkpoint of ``epoch`` into ``folder`` (see the module docstring); returns the JSON path.
    ``solver``: state a method carries between steps outside its parameters (``Method.solver_state``)."""
    folder = Path(folder)
    tensors = {f"method.{k}": v.detach().cpu().contiguous().clone() for k, v in method.items()}
    tensors.update({f"solver.{k}": v.detach().cpu().contiguous().clone() for k, v in (solver or {}).items()})
    optim_meta = None
    if optimizer is not None:
        optim_tensors, optim_meta = _optimizer_split(optimizer)
        tensors.update(optim_tensors)
    rng_tensors, rng_plain = rng_state()
    tensors.update({k: v.cpu().contiguous().clone() for k, v in rng_tensors.items()})
    name = f"checkpoint-{epoch:04d}.safetensors"
    atomic.write_with(folder / name, lambda tmp: save_file(tensors, str(tmp), metadata={"format": FORMAT}))
    state = {
        "format": FORMAT,
        "epoch": epoch,
        "tensors": name,
        "optimizer": optim_meta,
        "scaler": scaler,
        "scheduler": scheduler or {},
        "rng": rng_plain,
        "history": history or [],
    }
    atomic.write_json(folder / Run.CHECKPOINT, state)
    for old in folder.glob("checkpoint-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return folder / Run.CHECKPOINT


def exists(folder: str | Path) -> bool:
    return (Path(folder) / Run.CHECKPOINT).is_file()


def load(folder: str | Path, *, restore_rng: bool = False) -> Checkpoint:
    """Read the checkpoint in ``folder``; ``restore_rng`` also restores the saved RNG states."""
    folder = Path(folder)
    path = folder / Run.CHECKPOINT
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: no checkpoint in this run folder") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise UsageError(f"{path}: damaged checkpoint ({reason}); start a new run") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UsageError(f"{path}: not a {FORMAT} checkpoint")
    name, epoch = state.get("tensors"), state.get("epoch")
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".safetensors"):
        raise UsageError(f"{path}: 'tensors' must name a .safetensors file in the run folder, got {name!r}")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise UsageError(f"{path}: 'epoch' must be a whole number >= 0, got {epoch!r}")
    tensor_path = folder / name
    try:
        tensors = load_file(str(tensor_path))
    except FileNotFoundError as exc:
        raise UsageError(f"{tensor_path}: checkpoint tensors missing; start a new run") from exc
    except Exception as exc:  # safetensors' own error types: a damaged or foreign (e.g. pickle) file
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"{tensor_path}: not a safetensors checkpoint ({detail}); kmat reads only safetensors, start a "
            "new run"
        ) from exc
    bad = sorted(k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise UsageError(
            f"{tensor_path}: checkpoint holds NaN or inf values ({', '.join(bad)}); start a new run"
        )
    if restore_rng:
        set_rng_state(tensors, state.get("rng", {}))
    method = {k[len("method.") :]: v for k, v in tensors.items() if k.startswith("method.")}
    optimizer = _optimizer_join(state["optimizer"], tensors) if state.get("optimizer") else None
    return Checkpoint(
        epoch=epoch,
        method=method,
        optimizer=optimizer,
        scaler=state.get("scaler"),
        scheduler=state.get("scheduler", {}),
        rng=state.get("rng", {}),
        history=state.get("history", []),
        solver={k[len("solver.") :]: v for k, v in tensors.items() if k.startswith("solver.")},
    )
