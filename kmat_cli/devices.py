"""Device names from the config or the command line, resolved and checked once for every command."""

from __future__ import annotations

import torch

from kmat_cli.errors import UsageError


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    backend = getattr(torch.backends, kind, None)
    return backend is not None and backend.is_available()


def resolve_device(
    name: str, *, option: str = "train.device", prefer: tuple[str, ...] = ("cuda",)
) -> torch.device:
    """``auto`` -> the first available accelerator in ``prefer``, else cpu; any other name as given,
    checked to be a device (and CUDA to be present). ``option`` names the setting in error messages."""
    if name == "auto":
        return torch.device(next((kind for kind in prefer if _available(kind)), "cpu"))
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"{option} '{name}' is not a device; use auto, cpu, cuda, cuda:N or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"{option} '{name}': CUDA is not available here; use --device cpu")
    return device
