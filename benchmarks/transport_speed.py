"""Transport speed: kmat's own solvers (``fgw``, ``wasserstein``, ``gw``) against POT (``pot-*``).

A call is what a K-MaT training step does: ``loss = T(X_hi, X_lo)`` on K unit-norm class embeddings of
dimension D (the low end a noisy copy of the high end, as prompts are), then ``loss.backward()`` to
``X_lo``. As in training, consecutive calls see nearby problems: before each call every row of both
embedding matrices moves by ``--step`` (0: the same inputs every call). Every transport gets the same
options (the defaults unless given: epsilon 0.1, alpha 0.1, max_iter 100, tol 1e-6, inner_max_iter 1000,
inner_tol 1e-7) and the envelope gradient, so the difference is the solver: ours (log-domain
Sinkhorn-Newton, warm-started across calls, tolerance checked every step, solved on the CPU with the
gradient in closed form), ours with ``warm_start=False`` (every call from ``a b^T``), and POT's
``entropic_fused_gromov_wasserstein`` / ``entropic_gromov_wasserstein`` / ``sinkhorn`` (kernel Sinkhorn,
cold start per outer iteration, tolerances checked every 10 iterations).

    .venv/bin/python benchmarks/transport_speed.py --repeats 20 --dim 512    # markdown table on stdout

Ratios above 1 mean ours is faster. The last column is what ours needed per call (mean over the timed
calls): outer (linearisation) iterations / Newton-or-Sinkhorn steps. Convergence warnings are counted.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from dataclasses import dataclass
from datetime import date

import torch

from kmat_cli.registry import get


def _inputs(
    K: int, D: int, dtype: torch.dtype, device: str, seed: int, calls: int, step: float
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``calls`` pairs of high- and low-end embeddings; between pairs every row of both moves by ``step``
    (as both modalities' prompts do in training: they share context vectors)."""
    g = torch.Generator().manual_seed(seed)

    def moved(X: torch.Tensor) -> torch.Tensor:
        move = torch.nn.functional.normalize(torch.randn(K, D, generator=g, dtype=torch.float64), dim=1)
        return torch.nn.functional.normalize(X + step * move, dim=1)

    H = torch.randn(K, D, generator=g, dtype=torch.float64)
    L = H + torch.randn(K, D, generator=g, dtype=torch.float64)
    pairs = [(torch.nn.functional.normalize(H, dim=1), torch.nn.functional.normalize(L, dim=1))]
    for _ in range(calls - 1):
        pairs.append((moved(pairs[-1][0]), moved(pairs[-1][1])))
    return [(h.to(dtype=dtype, device=device), x.to(dtype=dtype, device=device)) for h, x in pairs]


@dataclass
class Timing:
    median: float
    best: float
    warned: int
    outer: float
    inner: float


def time_calls(T, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> Timing:
    """Forward + backward on each (X_hi, X_lo) of ``pairs`` in turn; the first call is a warm-up (and
    gives the warm start its first plan), the others are timed."""
    times, warned, outer, inner = [], 0, [], []
    for i, (X_hi, X_lo) in enumerate(pairs):
        X = X_lo.clone().requires_grad_()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            result = T.solve(X_hi, X)
            result.value.backward()
            if X.is_cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
        if i:
            times.append(elapsed)
            warned += bool(caught)
            outer.append(result.info.n_iter)
            inner.append(result.info.inner_iter)
    return Timing(
        statistics.median(times), min(times), warned, statistics.mean(outer), statistics.mean(inner)
    )


def _cell(t: Timing, repeats: int) -> str:
    note = f" ({t.warned}/{repeats} warned)" if t.warned else ""
    return f"{1e3 * t.median:.2f} ({1e3 * t.best:.2f}){note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per cell (median reported)")
    parser.add_argument("--dim", type=int, default=512, help="embedding dimension D")
    parser.add_argument("--ks", default="3,5,6,16,64", help="comma-separated K values")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument(
        "--transports", default="fgw,wasserstein,gw", help="ours; each is compared to pot-<name>"
    )
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--alpha", type=float, default=0.1, help="for fgw only")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: K x K ops gain nothing from more)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--step", type=float, default=1e-3, help="move of each low-end row between calls")
    parser.add_argument(
        "--no-pot", action="store_true", help="leave POT out (its float64 cells take seconds)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"date {date.today()}; {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}, device {args.device}; D = {args.dim}, epsilon {args.epsilon}, "
        f"alpha {args.alpha} (fgw), step {args.step:g}; median (best) ms of {args.repeats} forward+backward "
        "calls\n"
    )
    print(
        "| transport | K | dtype | ours ms | ours cold ms | POT ms | cold / ours | POT / ours | "
        "ours outer / Sinkhorn steps |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.transports.split(","):
        opts = {"epsilon": args.epsilon, **({"alpha": args.alpha} if name == "fgw" else {})}
        for K in (int(k) for k in args.ks.split(",")):
            for dtype_name in args.dtypes.split(","):
                dtype = getattr(torch, dtype_name)
                pairs = _inputs(K, args.dim, dtype, args.device, K, args.repeats + 1, args.step)
                ours = time_calls(get("transports", name)(**opts), pairs)
                cold = time_calls(get("transports", name)(warm_start=False, **opts), pairs)
                pot = None if args.no_pot else time_calls(get("transports", f"pot-{name}")(**opts), pairs)
                pot_cells = (
                    ("-", "-")
                    if pot is None
                    else (_cell(pot, args.repeats), f"{pot.median / ours.median:.1f}x")
                )
                print(
                    f"| {name} | {K} | {dtype_name} | {_cell(ours, args.repeats)} | {_cell(cold, args.repeats)} | "
                    f"{pot_cells[0]} | {cold.median / ours.median:.1f}x | {pot_cells[1]} | "
                    f"{ours.outer:.1f} / {ours.inner:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
