"""How many CPU threads torch may use and how many processes decode image files: one policy for training,
feature extraction and predict.

Torch's threads (:func:`plan`), in order:

1. ``requested`` > 0 (``--threads``, ``train.threads``): that many, but never more than the cores the
   process may use;
2. else ``OMP_NUM_THREADS`` when set (the usual way to pin threads under a scheduler), with the same cap;
3. else the cores the process may use that other processes are not busy on right now, minus ``reserved``
   (cores left to our own decoding workers), at least 1.

"The cores the process may use" is the smallest of: the CPUs of its affinity mask, the physical cores among
them (hyper-threads share one core's arithmetic units) and the cgroup CPU quota (containers, SLURM).
"Busy on right now" is read from ``/proc/stat`` over :data:`SAMPLE_S` seconds (Linux; elsewhere nothing
is subtracted). Why not torch's default of one thread per logical CPU: benchmarks/backbones.md, "Threads
on a shared CPU".

Decoding processes beside the model: :func:`decode_workers` (the feature cache and ``kmat predict``, through
:mod:`kmat_cli.imagefiles`).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

MAX_DECODE_WORKERS = 8
SAMPLE_S = 0.05  # how long the CPUs' activity is sampled before choosing the thread count
_CPU_DIR = Path("/sys/devices/system/cpu")
_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
_PROC_STAT = Path("/proc/stat")


def _affinity() -> list[int]:
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _physical(cpus: list[int]) -> int:
    """Physical cores among ``cpus`` (distinct (package, core) pairs); ``len(cpus)`` where unknown."""
    cores = set()
    for cpu in cpus:
        topo = _CPU_DIR / f"cpu{cpu}" / "topology"
        try:
            cores.add(
                ((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip())
            )
        except OSError:
            return len(cpus)
    return len(cores) or len(cpus)


def _quota() -> int | None:
    """The cgroup v2 CPU quota in whole cores (rounded up), or None where there is none."""
    try:
        quota, period = _CPU_MAX.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def cores() -> int:
    """The cores this process may use: min(affinity CPUs, physical cores among them, cgroup quota)."""
    cpus = _affinity()
    n = min(len(cpus), _physical(cpus))
    quota = _quota()
    return max(1, min(n, quota) if quota is not None else n)


def _cpu_times(cpus: set[int]) -> tuple[float, float] | None:
    """(busy, total) jiffies summed over ``cpus`` from ``/proc/stat``, or None where unreadable."""
    try:
        lines = _PROC_STAT.read_text().splitlines()
    except OSError:
        return None
    busy = total = 0.0
    for line in lines:
        head, _, rest = line.partition(" ")
        if not head.startswith("cpu") or head == "cpu" or int(head[3:]) not in cpus:
            continue
        values = [float(v) for v in rest.split()]
        idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
        total += sum(values[:8])
        busy += sum(values[:8]) - idle
    return (busy, total) if total else None


def busy_cores(sample_s: float = SAMPLE_S) -> float:
    """How many of the process's CPUs other processes keep busy, measured over ``sample_s`` seconds
    while this process sleeps (0.0 where ``/proc/stat`` cannot be read)."""
    cpus = set(_affinity())
    before = _cpu_times(cpus)
    if before is None:
        return 0.0
    time.sleep(sample_s)
    after = _cpu_times(cpus)
    if after is None or after[1] <= before[1]:
        return 0.0
    return len(cpus) * (after[0] - before[0]) / (after[1] - before[1])


def plan(requested: int = 0, *, reserved: int = 0) -> int:
    """The torch thread count of the policy in the module docstring (``reserved``: cores our own decoding
    workers will use)."""
    limit = cores()
    if requested > 0:
        return min(requested, limit)
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return min(int(omp), limit)
    free = limit - round(busy_cores())
    return max(1, min(limit, free) - max(0, reserved))


def apply(requested: int = 0, *, reserved: int = 0) -> int:
    """Set torch's CPU thread count by :func:`plan`; returns it."""
    import torch

    n = plan(requested, reserved=reserved)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def decode_workers(n_files: int, batch_size: int, device: str | torch.device) -> tuple[int, bool]:
    """(decoding processes, adaptive) for ``n_files`` image files read in batches of ``batch_size`` for a
    model on ``device``, when the caller leaves the number open.

    On a GPU (any device but the CPU): one process per CPU of the affinity mask but one (left to the main
    process), at least 1, at most :data:`MAX_DECODE_WORKERS`. On the CPU: the CPUs torch's threads leave
    free (``CPUs - torch threads``, at most 8), started at once; when torch's threads take every CPU,
    ``CPUs - 1`` (at least 1, at most 8) but adaptive: started only if decoding is a real share of the work
    (:func:`kmat_cli.imagefiles.batches`). Never more processes than batches; none in a daemonic process
    (which may not start children)."""
    import multiprocessing

    import torch

    if multiprocessing.current_process().daemon:
        return 0, False
    cpus = len(_affinity())
    n_batches = math.ceil(n_files / max(1, batch_size))
    on_cpu = torch.device(device).type == "cpu"
    spare = cpus - torch.get_num_threads()
    if on_cpu and spare < 1:
        return max(0, min(MAX_DECODE_WORKERS, max(1, cpus - 1), n_batches)), True
    free = spare if on_cpu else cpus - 1
    return max(0, min(MAX_DECODE_WORKERS, max(1, free), n_batches)), False
