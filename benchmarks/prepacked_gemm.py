"""The matrix products of one K-MaT training step's text tower, with and without MKL-packed weights.

One step runs every linear layer of BiomedCLIP's BERT-base text tower (12 layers of query, key, value,
attention output 768 x 768, intermediate 768 -> 3072, output 3072 -> 768) forward on the prompts' packed
tokens (``--rows``, 105 for chest) and again backward for the input gradient only (the weights are frozen):
``y = x W^T`` then ``dx = dy W``. "plain" is what ``F.linear`` and autograd do (MKL packs ``W`` inside every
call); "packed" is ``backbones/prepacked.py``'s path (``W`` and ``W^T`` packed once). Interleaved
repetitions, medians; GFLOP/s against a large square product on the same cores for reference.

    .venv/bin/python benchmarks/prepacked_gemm.py --rows 105 --reps 15
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _common import interleave

SHAPES = [(768, 768)] * 4 + [(3072, 768), (768, 3072)]  # (out, in) of one BERT-base layer's linears


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=105, help="tokens per step (chest: 105)")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if not (torch.backends.mkl.is_available() and hasattr(torch.ops.mkl, "_mkl_linear")):
        raise SystemExit("this torch build has no MKL packed linear")
    m = args.rows
    weights = [torch.randn(n, k) for _ in range(args.layers) for n, k in SHAPES]
    fwd = [torch.ops.mkl._mkl_reorder_linear_weight(w, m) for w in weights]
    bwd = [torch.ops.mkl._mkl_reorder_linear_weight(w.t().contiguous(), m) for w in weights]
    inputs = {k: torch.randn(m, k) for k in (768, 3072)}

    def plain() -> None:
        for w in weights:
            F.linear(inputs[w.shape[1]], w)
        for w in reversed(weights):
            inputs[w.shape[0]] @ w

    def packed() -> None:
        for w, p in zip(weights, fwd, strict=True):
            torch.ops.mkl._mkl_linear(inputs[w.shape[1]], p, w, None, m)
        for w, p in zip(reversed(weights), reversed(bwd), strict=True):
            torch.ops.mkl._mkl_linear(inputs[w.shape[0]], p, w.t(), None, m)

    big = torch.randn(2048, 2048)
    fns: dict[str, Callable[[], object]] = {"plain": plain, "packed": packed, "square": lambda: big @ big}
    times = interleave(fns, args.reps)
    flops = 2 * 2 * m * sum(n * k for n, k in SHAPES) * args.layers
    med = {name: statistics.median(t) for name, t in times.items()}
    ratios = statistics.median(p / q for p, q in zip(times["plain"], times["packed"], strict=True))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {m} rows, {args.layers} layers; "
          f"median of {args.reps} interleaved repetitions\n")  # fmt: skip
    print("| products | ms per step | GFLOP/s |\n|---|---|---|")
    for name in ("plain", "packed"):
        print(f"| {name} | {1e3 * med[name]:.1f} | {flops / med[name] / 1e9:.0f} |")
    print(
        f"| 2048 x 2048 x 2048 (reference) | {1e3 * med['square']:.1f} | {2 * 2048**3 / med['square'] / 1e9:.0f} |"
    )
    print(f"\nplain / packed (median of per-repetition ratios): {ratios:.2f}x")


if __name__ == "__main__":
    main()
