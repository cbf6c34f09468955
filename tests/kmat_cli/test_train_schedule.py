"""The trainer's schedule: the learning rate per epoch, the batches of an epoch, checkpoints with the solver
state."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from kmat_runner import cli

from kmat_cli import train
from kmat_cli.api import UsageError
from kmat_cli.train import lr_at

pytestmark = pytest.mark.usefixtures("trust_code")


def test_cosine_schedule_with_constant_warmup_matches_the_dassl_recipe() -> None:
    kw = dict(lr=0.0025, epochs=50, warmup_epochs=1, warmup_lr=1e-5)
    lrs = [lr_at(e, **kw) for e in range(50)]
    assert lrs[0] == 1e-5  # warm-up epoch at the constant lr
    assert lrs[1] == pytest.approx(0.0025)  # then the cosine starts from the base lr
    assert lrs[26] == pytest.approx(0.0025 * 0.5 * (1 + math.cos(math.pi * 25 / 50)))
    assert lrs[49] == pytest.approx(0.0025 * 0.5 * (1 + math.cos(math.pi * 48 / 50)))
    assert all(a >= b for a, b in itertools.pairwise(lrs[1:]))  # non-increasing after warm-up
    assert lr_at(10, lr=0.1, epochs=50, scheduler="constant") == 0.1
    with pytest.raises(UsageError, match=r"train\.scheduler"):
        lr_at(3, lr=0.1, epochs=5, scheduler="step")


def test_batches_drop_the_last_partial_batch_and_pick_one_cached_view_per_sample() -> None:
    from kmat_cli.train import Trainer

    n, views, dim = 10, 3, 4
    feats = torch.arange(n * views * dim, dtype=torch.float32).reshape(n, views, dim)
    labels = torch.arange(n)
    cfg = {"batch_size": 4, "seed": 1, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0}
    trainer = Trainer(torch.nn.Linear(1, 1), feats, labels, cfg, device=torch.device("cpu"))
    batches = trainer.batches(epoch=0)
    assert [b[0].shape for b in batches] == [(4, dim), (4, dim)]  # 10 samples, batch 4: 2 full batches
    seen = torch.cat([b[1] for b in batches])
    assert len(set(seen.tolist())) == 8
    for f, y in batches:
        for row, label in zip(f, y, strict=True):
            assert any(torch.equal(row, feats[label, v]) for v in range(views))
    again = trainer.batches(epoch=0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))  # (seed, epoch) fixes it
    assert not torch.equal(torch.cat([b[1] for b in trainer.batches(epoch=1)]), seen)


class _WithSolverState(torch.nn.Linear):
    """A stand-in method that carries solver state between steps, as K-MaT's transport does."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__(1, 1)
        self.state = state

    def solver_state(self) -> dict[str, torch.Tensor]:
        return self.state

    def load_solver_state(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state


def test_checkpoints_carry_the_solver_state(tmp_path: Path) -> None:
    from kmat_cli.train import Trainer

    cfg = {"batch_size": 2, "seed": 1, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0}
    cfg["scheduler"] = "cosine"
    feats, labels = torch.randn(4, 1), torch.zeros(4, dtype=torch.long)
    plan = torch.rand(3, 3, dtype=torch.float64)
    state = {"plan": plan, "g": torch.randn(3, dtype=torch.float64)}
    saving = Trainer(_WithSolverState(state), feats, labels, cfg, device=torch.device("cpu"), folder=tmp_path)
    saving.save()
    resumed = _WithSolverState({})
    Trainer(resumed, feats, labels, cfg, device=torch.device("cpu"), folder=tmp_path).resume()
    assert resumed.state.keys() == state.keys()
    assert all(torch.equal(resumed.state[k], state[k]) for k in state)


# ------------------------------------------------------------------------------ 12. short runs
def test_a_short_run_is_not_all_warm_up_and_zero_epochs_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs"
    code, stdout, _ = cli("train", "--epochs", "2", "--shots", "2", "--threads", "1", "--out", out)
    history = [json.loads(line) for line in (Path(stdout.strip()) / "metrics.jsonl").read_text().splitlines()]
    assert code == 0 and history[0]["lr"] == pytest.approx(0.0025)  # train.lr from the first epoch
    assert train.lr_at(0, lr=0.0025, epochs=50, warmup_epochs=1, warmup_lr=1e-5) == 1e-5  # the protocol's
    code, _, stderr = cli("train", "--epochs", "0", "--out", out)
    assert code == 2 and "at least 1 epoch" in stderr
    code, _, _ = cli("train", "-m", "zeroshot", "--epochs", "0", "--out", out)
    assert code == 0  # zero-shot trains nothing
