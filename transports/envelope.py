r"""A transport value carried back to its device with its gradient already computed.

The envelope (Danskin) theorem gives the gradient of an entropic transport optimum ``F(X) = min_T f(T, X)``
as ``dF/dX = df/dX (T*, X)``: the gradient of the objective at the fixed optimal plan. kmat's transports
solve the plan and take that gradient where the problem is cheapest, on the CPU, in the same call; the value
returned on the caller's device is then a node whose backward is one multiplication,
``dL/dX = dL/dvalue * dF/dX``, with no solver or cost graph left to walk (first-order gradients only).
"""

from __future__ import annotations

from typing import Any

import torch


class _Attached(torch.autograd.Function):
    """``value`` as a function of ``X`` whose gradient ``grad`` (shaped as ``X``) is known beforehand."""

    @staticmethod
    def forward(ctx: Any, X: torch.Tensor, value: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grad)
        return value.clone()

    @staticmethod
    def backward(ctx: Any, out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (grad,) = ctx.saved_tensors
        return out * grad, None, None


def attach_gradient(X: torch.Tensor, value: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """A scalar equal to ``value`` whose gradient w.r.t. ``X`` is ``grad`` (moved to ``X``'s device and
    dtype); ``value`` and ``grad`` are plain tensors without a graph."""
    grad = grad.detach().to(device=X.device, dtype=X.dtype)
    return _Attached.apply(X, value.detach(), grad)
