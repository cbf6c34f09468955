"""Killed runs: a ``kmat train`` process SIGKILLed at random times (seeded) and at planted points inside its
atomic writes (tests/support/killpoint.py) never leaves a run folder that looks finished when it is
not, and ``kmat train --resume RUN`` then finishes it to a ``prompts.safetensors`` identical, tensor for
tensor, to an uninterrupted run's.

The kills run as real subprocesses of the installed console script, several at once; the resumes run in
this process through the same entry point. A benchmark killed mid-grid is covered by the benchmark tests
(tests/kmat_cli/experiments/test_benchmark_resume.py), which own the grid.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from faults import (
    KILLPOINT,
    KMAT,
    PHANTOM,
    assert_error,
    cli,
    env,
    leftovers,
    phantom_root,
    run_folders,
    status,
    tensors_equal,
)

pytestmark = pytest.mark.usefixtures("no_progress")

EPOCHS = 12  # 16 steps per epoch (2 shots x 8 classes, batch 1): about 0.15 s an epoch on one thread
ARGS = ["train", *PHANTOM, "--epochs", str(EPOCHS), "--set", "train.batch_size=1", "--no-evaluate"]
SEED = 20240611  # of the random kill times


@dataclass
class Kill:
    """One killed run: a planted ``point`` (see killpoint.py) or a ``phase`` (startup, epochs, end) plus a
    ``delay`` in seconds after the phase begins; ``fresh``: an empty feature cache (the kill may hit it)."""

    label: str
    point: str | None = None
    phase: str | None = None
    delay: float = 0.0
    fresh: bool = False
    out: Path = field(default_factory=Path)
    proc: subprocess.Popen | None = None
    armed: float | None = None
    landed: str = ""

    def start(self, root: Path) -> None:
        self.out = root / self.label.replace(":", "_").replace("*", "x").replace(" ", "_")
        cache = self.out / "cache" if self.fresh else None
        extra = ["--set", f"task.root={phantom_root()}"] if self.fresh else []
        head = [sys.executable, KILLPOINT, self.point] if self.point else [KMAT]
        self.proc = subprocess.Popen(
            [*head, *ARGS, "--out", str(self.out / "runs"), *extra],
            env=env(cache),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.armed = time.monotonic() if self.phase == "startup" else None

    def _reached(self) -> bool:
        for run in run_folders(self.out / "runs"):
            if self.phase == "epochs" and status(run) == "running":
                return True
            if self.phase == "end" and (_epoch(run) or 0) >= EPOCHS - 1:  # the last epoch has begun
                return True
        return False

    def step(self) -> bool:
        """Advance the plan (kill when due); True once the process is gone."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            return True
        if self.phase is not None:
            if self.armed is None and self._reached():
                self.armed = time.monotonic()
            if self.armed is not None and time.monotonic() - self.armed >= self.delay:
                self.proc.kill()
                self.proc.wait()
                return True
        return False


def _epoch(run: Path) -> int | None:
    try:
        return int(json.loads((run / "checkpoint.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return None


def _drive(kills: list[Kill], root: Path, parallel: int = 3, timeout: float = 300) -> None:
    """Run the kills, ``parallel`` at a time, until every process is gone."""
    waiting, running = list(kills), []
    deadline = time.monotonic() + timeout
    while waiting or running:
        while waiting and len(running) < parallel:
            waiting[0].start(root)
            running.append(waiting.pop(0))
        running = [k for k in running if not k.step()]
        assert time.monotonic() < deadline, f"kills still running: {[k.label for k in running]}"
        time.sleep(0.005)


def _check_and_resume(kill: Kill, reference: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """After the kill: nothing looks finished unless it is; --resume finishes to the reference prompts.
    Returns where the kill landed."""
    assert kill.proc is not None and kill.proc.returncode == -9, (
        f"{kill.label}: the process was not killed (exit {kill.proc.returncode}): {kill.proc.stderr.read()}"
    )
    if kill.fresh:
        monkeypatch.setenv("KMAT_CACHE", str(kill.out / "cache"))
    folders = run_folders(kill.out / "runs")
    if not folders:  # nothing was started: a new run (on the same cache, whatever the kill left in it)
        extra = ["--set", f"task.root={phantom_root()}"] if kill.fresh else []
        result = cli(*ARGS, "--out", kill.out / "runs", *extra)
        assert result.code == 0, f"{kill.label}: a new run after the kill failed: {result.err}"
        [run] = run_folders(kill.out / "runs")
        assert not tensors_equal(reference, run / "prompts.safetensors")
        return "start-up, before the run folder (a new run then matches)"
    [run] = folders
    before = status(run)
    if before == "finished":  # killed after the finish mark was renamed into place: it really is finished
        assert _epoch(run) == EPOCHS and not tensors_equal(reference, run / "prompts.safetensors")
        return "after the run was marked finished"
    if before == "missing":  # the folder was claimed but its run.json never written: nothing to resume
        assert_error(cli("train", "--resume", run), run, "not a kmat run folder")
        return "start-up, run folder claimed, run.json not written"
    if not (run / "config.yaml").is_file():
        assert_error(cli("train", "--resume", run), run, "nothing to resume")
        return "start-up, before config.yaml was saved"
    epoch, exported = _epoch(run), (run / "prompts.safetensors").is_file()
    result = cli("train", "--resume", run, "--no-evaluate")
    assert result.code == 0, f"{kill.label}: resume failed: {result.err}"
    assert status(run) == "finished" and _epoch(run) == EPOCHS
    assert not leftovers(run), f"{kill.label}: temporary files left: {leftovers(run)}"
    diff = tensors_equal(reference, run / "prompts.safetensors")
    assert not diff, f"{kill.label} (checkpoint epoch {epoch}): resumed prompts differ: {diff}"
    if epoch is None:
        return f"{before}, before the first checkpoint"
    return f"{before}, checkpoint of epoch {epoch} of {EPOCHS}" + (", prompts written" if exported else "")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prompts of an uninterrupted run with the same configuration."""
    out = tmp_path_factory.mktemp("reference")
    result = cli(*ARGS, "--out", out)
    assert result.code == 0, result.err
    [run] = run_folders(out)
    return run / "prompts.safetensors"


def _timed(n: int) -> list[Kill]:
    """``n`` kills at seeded random times, spread over start-up, the epochs and the end of a run."""
    rng = random.Random(SEED)
    phases = ["epochs", "startup", "end", "epochs", "epochs", "startup", "end", "epochs", "startup", "epochs"]
    # start-up lasts about 6 s (imports, backbone, features), the epochs about 2 s; "end" is counted from
    # the start of the last epoch: that epoch, the export of the prompts and the finish mark
    bounds = {"startup": (0.3, 6.5), "epochs": (0.0, 1.5), "end": (0.0, 0.25)}
    out = []
    for i in range(n):
        phase = phases[i % len(phases)]
        delay = round(rng.uniform(*bounds[phase]), 3)
        out.append(Kill(f"timed-{i + 1} {phase} +{delay}s", phase=phase, delay=delay))
    return out


# Planted points, every one inside an atomic write or between two writes that must stay consistent.
DEFAULT_POINTS = [
    "replace:checkpoint-*.safetensors:3:before",  # tensors of epoch 3 written and synced, not renamed
    "replace:checkpoint.json:5:torn",  # the state of epoch 5 half-written
]
SLOW_POINTS = [
    "replace:checkpoint-*.safetensors:1:torn",  # the very first checkpoint torn: nothing to resume from
    "replace:checkpoint.json:1:before",  # the first state complete, not renamed
    "replace:checkpoint.json:7:after",  # new state in place, old tensors not yet deleted
    "unlink:checkpoint-*.safetensors:4",  # deleting the previous tensors
    "replace:metrics.jsonl:6:torn",  # the per-epoch log torn
    "step:100",  # in the middle of epoch 7
    "replace:prompts.safetensors:1:torn",  # exporting the prompts at the end
    "replace:run.json:3:before",  # the finish mark written, not renamed
    "replace:run.json:3:after",  # the finish mark renamed: the run is finished
    "replace:config.yaml:1:before",  # start-up: the config not saved yet
    "replace:run.json:1:torn",  # start-up: the folder claimed, its status torn
]
FRESH_POINTS = [  # with an empty feature cache, so the kill hits the cache writes
    "replace:*-*-*.safetensors:1:torn",  # a feature-cache shard half-written
    "replace:file-hashes.json:1:before",  # the content-hash memo complete, not renamed
]


def test_sigkill_then_resume_three_kills(
    tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default run: one kill at a seeded random time during the epochs and two planted in checkpoint
    writes (three processes at once); each resumes to the uninterrupted run's prompts."""
    kills = [*_timed(1), *(Kill(p, point=p) for p in DEFAULT_POINTS)]
    _drive(kills, tmp_path)
    for kill in kills:
        kill.landed = _check_and_resume(kill, reference, monkeypatch)
    print("\n".join(f"{k.label}: {k.landed}" for k in kills))


@pytest.mark.slow
def test_sigkill_then_resume_at_ten_random_times_and_every_planted_point(
    tmp_path: Path, reference: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow run: 10 kills at seeded random times (start-up, epochs, end) and 13 planted points."""
    kills = [
        *_timed(10),
        *(Kill(p, point=p) for p in SLOW_POINTS),
        *(Kill(p, point=p, fresh=True) for p in FRESH_POINTS),
    ]
    _drive(kills, tmp_path)
    for kill in kills:
        kill.landed = _check_and_resume(kill, reference, monkeypatch)
    print("\n".join(f"{k.label}: {k.landed}" for k in kills))
