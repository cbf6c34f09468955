"""The CPU thread policy (kmat_cli.threads): never more threads than usable cores, OMP_NUM_THREADS and
explicit counts honoured, cores busy with other processes left to them; predict and training follow it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kmat_cli import threads


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """A simulated 4-core process with ``busy`` cores taken by other processes."""
    state = {"busy": 0.0}
    monkeypatch.setattr(threads, "cores", lambda: 4)
    monkeypatch.setattr(threads, "busy_cores", lambda sample_s=threads.SAMPLE_S: state["busy"])
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return state


def test_plan_caps_requests_and_honours_omp(machine: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    assert threads.plan() == 4
    assert threads.plan(2) == 2 and threads.plan(64) == 4  # never more than the usable cores
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads.plan() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "16")
    assert threads.plan() == 4
    assert threads.plan(3) == 3  # an explicit count wins over the environment


def test_busy_neighbours_and_decoding_workers_take_cores_away(machine: dict) -> None:
    machine["busy"] = 1.2  # one busy neighbour (and some noise)
    assert threads.plan() == 3
    assert threads.plan(reserved=2) == 1
    machine["busy"] = 6.0  # more busy processes than cores: still one thread
    assert threads.plan() == 1 and threads.plan(reserved=3) == 1


def _stat(rows: dict[int, tuple[int, int]]) -> str:
    """A /proc/stat text with per-CPU (busy user jiffies, idle jiffies)."""
    total = [sum(b for b, _ in rows.values()), sum(i for _, i in rows.values())]
    lines = [f"cpu  {total[0]} 0 0 {total[1]} 0 0 0 0 0 0"]
    lines += [f"cpu{c} {b} 0 0 {i} 0 0 0 0 0 0" for c, (b, i) in rows.items()]
    return "\n".join([*lines, "intr 1 2 3", "ctxt 5"]) + "\n"


def test_busy_cores_reads_the_process_cpus_from_proc_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stat = tmp_path / "stat"
    snapshots = iter(
        [
            _stat({0: (100, 100), 1: (100, 100), 2: (0, 0)}),
            _stat({0: (200, 100), 1: (100, 200), 2: (500, 0)}),  # cpu0 fully busy, cpu1 idle, cpu2 not ours
        ]
    )
    monkeypatch.setattr(threads, "_PROC_STAT", stat)
    monkeypatch.setattr(threads, "_affinity", lambda: [0, 1])
    monkeypatch.setattr(threads.time, "sleep", lambda s: stat.write_text(next(snapshots)))
    stat.write_text(next(snapshots))
    assert threads.busy_cores() == pytest.approx(1.0)


def test_cores_counts_physical_cores_of_the_affinity_and_the_cgroup_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for cpu, core in enumerate([0, 0, 1, 1, 2, 2, 3, 3]):  # 8 hyper-threads on 4 cores
        topo = tmp_path / "cpu" / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text("0\n")
        (topo / "core_id").write_text(f"{core}\n")
    monkeypatch.setattr(threads, "_CPU_DIR", tmp_path / "cpu")
    monkeypatch.setattr(threads, "_CPU_MAX", tmp_path / "cpu.max")
    monkeypatch.setattr(threads, "_affinity", lambda: list(range(8)))
    assert threads.cores() == 4
    monkeypatch.setattr(threads, "_affinity", lambda: [0, 1, 2])  # pinned to 3 hyper-threads of 2 cores
    assert threads.cores() == 2
    monkeypatch.setattr(threads, "_affinity", lambda: list(range(8)))
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs of quota
    assert threads.cores() == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cores() == 4


def test_training_and_predict_set_torch_threads_by_the_policy(
    machine: dict, phantom_prompts: Path, tmp_path: Path
) -> None:
    import kmat
    from kmat_cli import runtime

    before = torch.get_num_threads()
    try:
        machine["busy"] = 3.0
        assert runtime.set_threads(0) == 1 and torch.get_num_threads() == 1
        assert runtime.set_threads(2) == 2 and torch.get_num_threads() == 2
        torch.set_num_threads(4)
        rows = kmat.predict([phantom_prompts.parent / "images"], embeddings=phantom_prompts, device="cpu")
        assert rows and torch.get_num_threads() == 1  # 4 cores, 3 busy elsewhere
    finally:
        torch.set_num_threads(before)
