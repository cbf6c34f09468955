"""The class-matched transport: no optimisation, the plan is the identity coupling."""

from __future__ import annotations

import torch

from kmat_cli.api import Transport, UsageError


class PairedL2(Transport):
    """Class-matched squared distance: (1/K) sum_k ||X_hi[k] - X_lo[k]||^2 with the plan I/K.

    A baseline transport that assumes class k of one modality corresponds to class k of the other. The
    gradient reaches only ``X_lo`` (the high-end side is detached), like kmat's built-in transports.
    """

    def __init__(self, *, scale: float = 1.0) -> None:
        self.scale = scale

    def _check(self, X_hi: torch.Tensor, X_lo: torch.Tensor) -> None:
        if X_hi.shape != X_lo.shape or X_hi.ndim != 2:
            raise UsageError(
                f"paired-l2 needs two (K, D) tensors of one shape, got {tuple(X_hi.shape)} "
                f"and {tuple(X_lo.shape)}"
            )

    def plan(self, X_hi, X_lo, a=None, b=None):
        self._check(X_hi, X_lo)
        k = X_hi.shape[0]
        return torch.eye(k, dtype=X_lo.dtype, device=X_lo.device) / k

    def __call__(self, X_hi, X_lo, a=None, b=None):
        self._check(X_hi, X_lo)
        return self.scale * ((X_hi.detach() - X_lo) ** 2).sum(dim=1).mean()
