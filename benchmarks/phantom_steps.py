"""Training step time on the phantom task: K-MaT against CoOp, and K-MaT without its transport term.

Each variant trains ``kmat train --task phantom`` (defaults: 16 shots, batch 4, 12 steps per epoch) for
``--epochs`` epochs on one torch thread, and every ``Trainer.step`` after the first epoch (a warm-up) is
timed twice: wall clock and the CPU time of the thread (``time.thread_time``), which a busy machine's
preemptions do not inflate. The variants alternate for ``--rounds`` rounds, so machine load hits them
alike; the median step over all rounds is reported, and the ratio to CoOp is the median of the per-round
ratios of median steps. K-MaT minus K-MaT without transport is what the transport (FGW forward +
backward) costs per step; the transport's own call (``FGW.solve``: the plan, the value and its gradient)
is also timed alone, in thread CPU time, with its iterations.

    .venv/bin/python benchmarks/phantom_steps.py --rounds 3 --epochs 4     # markdown table on stdout
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kmat.transports.fgw import FGW

from kmat_cli import session, train

VARIANTS = {
    "CoOp": ("coop", []),
    "K-MaT": ("kmat", []),
    "K-MaT, no transport": ("kmat", ["method.transport=false"]),
}


SOLVES: list[tuple[float, int, int]] = []  # (thread CPU seconds, outer iterations, Sinkhorn steps)
COUNTING = {"on": False}  # set while a step after the first epoch runs


def _timed_solve(original: Callable[..., Any]) -> Callable[..., Any]:
    def solve(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        result = original(self, *args, **kwargs)
        if COUNTING["on"]:
            SOLVES.append((time.thread_time() - start, result.info.n_iter, result.info.inner_iter))
        return result

    return solve


def step_times(method: str, sets: list[str], epochs: int, out: Path) -> tuple[list[float], list[float]]:
    """Wall and thread-CPU seconds of every step after the first epoch of one phantom training run."""
    wall: list[float] = []
    cpu: list[float] = []
    original = train.Trainer.step

    def timed(self: train.Trainer, features: Any, labels: Any) -> dict[str, float]:
        COUNTING["on"] = self.epoch >= 1
        w, c = time.perf_counter(), time.thread_time()
        out = original(self, features, labels)
        if self.epoch >= 1:
            wall.append(time.perf_counter() - w)
            cpu.append(time.thread_time() - c)
        return out

    train.Trainer.step = timed  # type: ignore[method-assign]
    solve = FGW.solve
    FGW.solve = _timed_solve(solve)  # type: ignore[method-assign]
    try:
        session.train(
            "phantom",
            method,
            1,
            sets=[f"out={out}", f"train.epochs={epochs}", "train.threads=1", *sets],
            evaluate=False,
        )
    finally:
        train.Trainer.step = original  # type: ignore[method-assign]
        FGW.solve = solve  # type: ignore[method-assign]
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4, help="per run (the first is a warm-up)")
    args = parser.parse_args()
    rounds: dict[str, list[tuple[list[float], list[float]]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, (method, sets) in VARIANTS.items():
                rounds[name].append(step_times(method, sets, args.epochs, Path(tmp)))
    load = os.getloadavg()[0]
    print(
        f"phantom task, 1 torch thread, {args.rounds} rounds x {args.epochs} epochs; load average {load:.1f}\n"
    )
    print("| variant | step ms, wall | / CoOp, wall | step ms, thread CPU | / CoOp, CPU |")
    print("|---|---|---|---|---|")
    overall: dict[tuple[str, int], float] = {}  # (variant, 0 wall / 1 CPU) -> median step
    for name, runs in rounds.items():
        cells = []
        for kind in (0, 1):
            per_round = [statistics.median(r[kind]) for r in runs]
            coop = [statistics.median(r[kind]) for r in rounds["CoOp"]]
            ratio = statistics.median(v / c for v, c in zip(per_round, coop, strict=True))
            overall[name, kind] = statistics.median(t for r in runs for t in r[kind])
            cells += [f"{1e3 * overall[name, kind]:.2f}", f"{ratio:.2f}x"]
        print(f"| {name} | {' | '.join(cells)} |")
    cost = [1e3 * (overall["K-MaT", k] - overall["K-MaT, no transport", k]) for k in (0, 1)]
    print(f"\ntransport per K-MaT step (K-MaT - no transport): {cost[0]:.2f} ms wall, {cost[1]:.2f} ms CPU")
    print(
        f"transport call alone (FGW.solve, {len(SOLVES)} calls after the first epoch of each run): median "
        f"{1e3 * statistics.median(t for t, _, _ in SOLVES):.2f} ms CPU; per call "
        f"{statistics.mean(o for _, o, _ in SOLVES):.1f} outer iterations, "
        f"{statistics.mean(i for _, _, i in SOLVES):.1f} Newton-or-Sinkhorn steps"
    )


if __name__ == "__main__":
    main()
