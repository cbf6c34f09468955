"""Ground costs between embeddings: the cross cost ``M`` and the structure matrices ``C_hi``, ``C_lo``.

For rows ``x_i`` of ``X`` (n, D) and ``y_j`` of ``Y`` (m, D), :func:`pairwise_cost` returns the (n, m)
matrix ``d(x_i, y_j)`` for

- ``"sqeuclidean"``: ``||x - y||^2 = ||x||^2 + ||y||^2 - 2 <x, y>`` (clamped at 0),
- ``"euclidean"``:   ``||x - y||``, taken as 0 where the expanded square is within its rounding error of 0
  (``<= 16 eps (||x||^2 + ||y||^2)``: the square root would turn that error into a distance of
  ``~sqrt(eps)``, e.g. 1.7e-7 in float64 on a structure matrix's diagonal); its gradient is 0 there,
  instead of the NaN of a plain square root,
- ``"cosine"``:      ``1 - <x, y> / (||x|| ||y||)``.

All three are symmetric, so ``C = pairwise_cost(X, X)`` is a symmetric structure matrix.
"""

from __future__ import annotations

import torch

COSTS = ("sqeuclidean", "euclidean", "cosine")


def _sqeuclidean(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    xx = (X * X).sum(-1)
    yy = (Y * Y).sum(-1)
    return torch.addmm(xx[:, None] + yy[None, :], X, Y.T, alpha=-2.0).clamp_min(0.0)


def _euclidean(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    sq = _sqeuclidean(X, Y)
    rounding = 16 * torch.finfo(sq.dtype).eps * ((X * X).sum(-1)[:, None] + (Y * Y).sum(-1)[None, :])
    positive = sq > rounding
    # Square root only where it is differentiable; the double `where` keeps the gradient finite at 0.
    return torch.where(positive, torch.where(positive, sq, torch.ones_like(sq)).sqrt(), torch.zeros_like(sq))


def _cosine(X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    Xn = torch.nn.functional.normalize(X, dim=-1)
    Yn = torch.nn.functional.normalize(Y, dim=-1)
    return 1.0 - Xn @ Yn.T


_FUNCS = {"sqeuclidean": _sqeuclidean, "euclidean": _euclidean, "cosine": _cosine}


def pairwise_cost(X: torch.Tensor, Y: torch.Tensor, cost: str = "sqeuclidean") -> torch.Tensor:
    """(n, D), (m, D) -> (n, m) matrix of ``d(X[i], Y[j])`` for ``cost`` in :data:`COSTS`."""
    try:
        func = _FUNCS[cost]
    except KeyError:
        raise ValueError(f"unknown cost '{cost}'; known: {', '.join(COSTS)}") from None
    return func(X, Y)
