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
:func:`pairwise_cost_grad` is their vector-Jacobian product in closed form (the gradients of ``<G, C>``),
for gradients taken without autograd.
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


def pairwise_cost_grad(
    X: torch.Tensor, Y: torch.Tensor, C: torch.Tensor, G: torch.Tensor, cost: str = "sqeuclidean"
) -> torch.Tensor:
    """The gradient w.r.t. ``Y`` of ``<G, C>`` for ``C = pairwise_cost(X, Y, cost)`` (given), one (m, D)
    matrix product:

    - sqeuclidean: ``2 (diag(G^T 1) Y - G^T X)``;
    - euclidean: the same with ``G / (2 C)`` where ``C > 0`` and 0 where ``C = 0`` (as the cost's own
      gradient there);
    - cosine: ``-G^T Xn`` for the normalised rows, through the normalisation
      ``dy = (dyn - yn <yn, dyn>) / ||y||``.

    For a structure matrix ``C = pairwise_cost(X, X)`` the gradient w.r.t. ``X`` is this with ``G + G^T``.
    """
    if cost == "euclidean":
        positive = C > 0
        G = torch.where(positive, G / torch.where(positive, 2.0 * C, 1.0), 0.0)
    if cost in ("sqeuclidean", "euclidean"):
        return 2.0 * torch.addmm(G.sum(0)[:, None] * Y, G.T, X, alpha=-1.0)
    if cost == "cosine":
        Xn = torch.nn.functional.normalize(X, dim=-1)
        ny = Y.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        Yn = Y / ny
        gyn = -(G.T @ Xn)
        return (gyn - Yn * (Yn * gyn).sum(-1, keepdim=True)) / ny
    raise ValueError(f"unknown cost '{cost}'; known: {', '.join(COSTS)}")
