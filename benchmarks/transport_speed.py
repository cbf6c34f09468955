"""Transport speed: kmat's own solvers (``fgw``, ``wasserstein``, ``gw``) against POT (``pot-*``).

A call is what a K-MaT training step does: ``loss = T(X_hi, X_lo)`` on K unit-norm class embeddings of
dimension D (the low end a noisy copy of the high end, as prompts are), then ``loss.backward()`` to
``X_lo``. Both sides get the same options (the transports' defaults unless given: epsilon 0.1, alpha 0.1,
max_iter 100, tol 1e-6, inner_max_iter 1000, inner_tol 1e-7) and the same envelope gradient, so the
difference is the solver: ours (log-domain Sinkhorn-Newton, warm-started, tolerance checked every step)
against POT's ``entropic_fused_gromov_wasserstein`` / ``entropic_gromov_wasserstein`` / ``sinkhorn``
(kernel Sinkhorn, cold start per outer iteration, tolerances checked every 10 iterations).

    .venv/bin/python benchmarks/transport_speed.py --repeats 20 --dim 512    # markdown table on stdout

The ratio column is POT time / ours (above 1: ours is faster). Convergence warnings are counted, not shown.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
import warnings
from datetime import date

import torch

from kmat_cli.registry import get


def _inputs(K: int, D: int, dtype: torch.dtype, device: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    H = torch.randn(K, D, generator=g, dtype=torch.float64)
    L = H + torch.randn(K, D, generator=g, dtype=torch.float64)
    H, L = torch.nn.functional.normalize(H, dim=1), torch.nn.functional.normalize(L, dim=1)
    return H.to(dtype=dtype, device=device), L.to(dtype=dtype, device=device)


def time_call(T, X_hi: torch.Tensor, X_lo: torch.Tensor, repeats: int) -> tuple[float, float, int]:
    """Median and best seconds of forward + backward over ``repeats`` calls (after one warm-up), and how
    many of those calls warned (did not converge)."""
    times, warned = [], 0
    for i in range(repeats + 1):
        X = X_lo.clone().requires_grad_()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            T(X_hi, X).backward()
            if X.is_cuda:
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
        if i:
            times.append(elapsed)
            warned += bool(caught)
    return statistics.median(times), min(times), warned


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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(
        f"date {date.today()}; {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
        f"threads, torch {torch.__version__}, device {args.device}; D = {args.dim}, epsilon {args.epsilon}, "
        f"alpha {args.alpha} (fgw); median (best) ms of {args.repeats} forward+backward calls\n"
    )
    print("| transport | K | dtype | ours ms | POT ms | POT / ours | ours outer / Sinkhorn steps |")
    print("|---|---|---|---|---|---|---|")
    for name in args.transports.split(","):
        opts = {"epsilon": args.epsilon, **({"alpha": args.alpha} if name == "fgw" else {})}
        ours, pot = get("transports", name)(**opts), get("transports", f"pot-{name}")(**opts)
        for K in (int(k) for k in args.ks.split(",")):
            for dtype_name in args.dtypes.split(","):
                dtype = getattr(torch, dtype_name)
                X_hi, X_lo = _inputs(K, args.dim, dtype, args.device, seed=K)
                t_ours, b_ours, w_ours = time_call(ours, X_hi, X_lo, args.repeats)
                t_pot, b_pot, w_pot = time_call(pot, X_hi, X_lo, args.repeats)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    info = ours.solve(X_hi, X_lo).info
                note = "".join(f" ({w}/{args.repeats} warned)" if w else "" for w in (w_ours,))
                pot_note = f" ({w_pot}/{args.repeats} warned)" if w_pot else ""
                print(
                    f"| {name} | {K} | {dtype_name} | {1e3 * t_ours:.2f} ({1e3 * b_ours:.2f}){note} | "
                    f"{1e3 * t_pot:.2f} ({1e3 * b_pot:.2f}){pot_note} | {t_pot / t_ours:.1f}x | "
                    f"{info.n_iter} / {info.inner_iter} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
