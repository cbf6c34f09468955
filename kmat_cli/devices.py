"""Device names from the config or the command line, resolved and checked once for every command."""

from __future__ import annotations

import torch

from kmat_cli.errors import UsageError

KINDS = ("cpu", "cuda", "mps")  # the device types kmat runs on


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    backend = getattr(torch.backends, kind, None)
    return backend is not None and backend.is_available()


def resolve_device(
    name: str, *, option: str = "train.device", prefer: tuple[str, ...] = ("cuda",)
) -> torch.device:
    """``auto`` -> the first available accelerator in ``prefer``, else cpu; any other name as given,
    checked to be a cpu, cuda or mps device that this machine has (a one-line UsageError naming ``option``,
    the setting in error messages, otherwise)."""
    if name == "auto":
        return torch.device(next((kind for kind in prefer if _available(kind)), "cpu"))
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in KINDS:
        raise UsageError(f"{option} '{name}' is not a device; use auto, cpu, cuda, cuda:N or mps")
    if device.type != "cpu" and not _available(device.type):
        raise UsageError(f"{option} '{name}': {device.type.upper()} is not available here; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(
            f"{option} '{name}': this machine has {torch.cuda.device_count()} CUDA device(s), numbered from 0"
        )
    return device
