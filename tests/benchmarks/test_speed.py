"""benchmarks/speed.py cannot silently break: its ratios come from the times it measured, its table and last
line keep their format, and its step functions run on a toy-size BiomedCLIP (the same tower kinds)."""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import pytest
import torch
from repo_paths import REPO

BENCH = REPO / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import speed  # noqa: E402
from _common import interleave, per_rep_ratio  # noqa: E402

LAST_LINE = re.compile(r"^speedup_vs_naive=\d+\.\d overhead_vs_bound=\d+\.\d\d$")


class FakeClock:
    """A clock that only moves when a timed function says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: list[float]) -> object:
        """A function that takes ``seconds[i]`` on its i-th call (warm-up calls included)."""
        calls = iter(seconds)
        return lambda: setattr(self, "now", self.now + next(calls))


def test_ratios_come_from_the_measured_times() -> None:
    clock = FakeClock()
    # warm-up call first, then 3 timed repetitions each; kmat's step runs in both rounds (with the naive
    # step, then with the bound and FGW)
    fns = {
        "naive": clock.spend([9.0, 4.0, 6.0, 5.0]),
        "kmat": clock.spend([9.0, 0.2, 0.25, 0.5] * 2),
        "bound": clock.spend([9.0, 0.1, 0.2, 0.25]),
        "fgw": clock.spend([9.0, 0.002, 0.001, 0.005]),
    }
    times = speed.time_steps(fns, 3, clock=clock)
    assert times["naive"] == pytest.approx([4.0, 6.0, 5.0])
    assert times["kmat_vs_naive"] == pytest.approx([0.2, 0.25, 0.5]) == times["kmat"]
    res = speed.Results(device="cpu")
    speed.step_results(times, res)
    assert res.steps["naive"] == pytest.approx(5.0) and res.steps["kmat"] == pytest.approx(0.25)
    assert res.speedup == pytest.approx(20.0)  # median of 20, 24, 10
    assert res.overhead == pytest.approx(2.0)  # median of 2, 1.25, 2
    assert res.fgw_share == pytest.approx(0.01)  # median of 0.01, 0.004, 0.01
    epochs = interleave(
        {"packed": clock.spend([9.0, 2.0, 2.5, 5.0]), "unpacked": clock.spend([9.0, 3.0, 2.5, 6.0])},
        3,
        clock=clock,
    )
    speed.epoch_results(epochs, res)
    assert res.epochs == {"packed": pytest.approx(2.5), "unpacked": pytest.approx(3.0)}
    assert res.prepack_gain == pytest.approx(1.2)  # median of 1.5, 1, 1.2
    assert per_rep_ratio([2.0, 9.0, 1.0], [1.0, 3.0, 1.0]) == 2.0
    assert speed.last_line(res) == "speedup_vs_naive=20.0 overhead_vs_bound=2.00"
    text = speed.table(res)
    assert "| 1 | **speed-up vs naive** | 20.0x | >= 10x | yes |" in text
    assert "| 2 | **overhead vs bound** (kmat step / bound) | 2.00x | <= 1.3x | **no** |" in text
    assert "| 1 | gain of the packed text weights (unpacked / packed epoch) | 1.20x |  |  |" in text


def test_table_rows_and_projection() -> None:
    res = speed.Results(device="cpu", speedup=12.34, overhead=1.1, fgw_share=0.003)
    res.steps = {"naive": 2.0, "kmat": 0.16, "bound": 0.15, "fgw": 0.001}
    res.runs = {
        "zeroshot": {"setup": 1.0, "step": 0.0, "save": 0.0, "fit": 0.0, "eval": 0.5},
        "kmat": {"setup": 3.0, "step": 0.16, "save": 0.01, "fit": 100.0, "eval": 0.5},
    }
    res.unique_images, res.encode_rate, res.encode_ratio = 2736, 10.0, 0.97
    res.predict, res.predict_rate = {"phantom": 0.85}, {"phantom": 3000.0}
    res.rss_mb = {"train": 1700.0}
    assert res.train_run_s() == 103.0
    encode, runs, total = res.protocol_s()
    assert (encode, runs, total) == (273.6, 3 * (1.5 + 103.5), 273.6 + 315.0)
    text = speed.table(res)
    lines = text.splitlines()
    assert lines[0] == "| # | measurement | value | goal | met |"
    assert all(line.startswith("| ") and line.count(" | ") == 4 for line in lines[2:])
    assert "| 103.00 s | < 2 min | yes |" in text
    assert "| 97% | >= 95% | yes |" in text
    assert "| 85% | >= 90% | **no** |" in text
    assert "| 6 | peak RSS, K-MaT training run | 1700 MB |  |  |" in text
    assert LAST_LINE.match(speed.last_line(res))


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory):
    """A toy-size BiomedCLIP (ViT + BERT + MLP projection), the chest task's parts and a K-MaT trainer."""
    from kmat_cli.train import Trainer

    torch.set_num_threads(min(2, torch.get_num_threads()))
    backbone = speed.biomedclip(tmp_path_factory.mktemp("toy"), tiny=True)
    parts = speed.build_parts(backbone, torch.device("cpu"))
    method = speed.build_method(parts, "kmat")
    feats, labels = speed.shots(parts, torch.device("cpu"))
    trainer = Trainer(
        method, feats, labels, speed.train_cfg(parts, 50), device=torch.device("cpu"), progress=False
    )
    return backbone, parts, method, trainer, feats[:4], labels[:4]


def test_step_functions_run_the_real_paths(toy) -> None:
    backbone, _, method, trainer, feats, labels = toy
    size = backbone.preprocess_spec["image_size"]
    fns = speed.step_fns(trainer, method, backbone, torch.randn(4, 3, size, size), feats, labels)
    before = method.prompts.ctx_class.detach().clone()
    times = speed.time_steps(fns, 1)
    assert set(times) == {"naive", "kmat_vs_naive", "kmat", "bound", "fgw"}
    assert all(len(t) == 1 and t[0] > 0 for t in times.values())
    assert not torch.equal(before, method.prompts.ctx_class)  # the trainer's optimizer stepped
    assert backbone.truncate_prompts  # the naive step restores the real-length path ...
    assert backbone.prepack_weights  # ... and the packed weights (off in the naive step)
    epochs = speed.epoch_fns(trainer, backbone, feats, labels, 2)
    before = method.prompts.ctx_class.detach().clone()
    assert set(interleave(epochs, 1)) == {"packed", "unpacked"}
    assert not torch.equal(before, method.prompts.ctx_class) and backbone.prepack_weights
    texts = tuple(t for g in method.prompts.groups for t in method.prompts.texts[g])
    full = backbone._prepared[(texts, method.prompts.context_length, False)]
    real = backbone._prepared[(texts, method.prompts.context_length, True)]
    assert full.embeds.shape[1] == 256 and real.embeds.shape[1] < 256  # naive: full context; kmat: real
    assert "6 prompts" in speed.tokens_line(backbone, method)


def test_bound_is_the_same_loss_as_the_step(toy, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound computes the method's own loss (same prompts, same features) and back-propagates it."""
    _, _, method, _, feats, labels = toy
    with torch.no_grad():
        want = sum(v for v in method.losses(feats, labels).values())
    got: list[float] = []
    original = method.loss_terms

    def spy(text, *args):
        got.append(next(iter(text.values())).requires_grad)
        terms = original(text, *args)
        got.append(float(sum(terms.values()).detach()))
        return terms

    monkeypatch.setattr(method, "loss_terms", spy)
    speed.bound_step(method, feats, labels)
    assert got[0] is True and got[1] == pytest.approx(float(want), rel=1e-5)


def test_run_costs_of_methods(toy, tmp_path: Path) -> None:
    backbone, parts, *_ = toy
    test = {"hi": torch.randn(10, backbone.embed_dim), "lo": torch.randn(6, backbone.embed_dim)}
    costs = speed.run_costs(parts, ["zeroshot", "coop", "cocoop"], tmp_path, test, reps=1, eval_subset=4)
    assert list(costs) == ["zeroshot", "coop", "cocoop"]
    for name, c in costs.items():
        assert set(c) == {"setup", "step", "save", "fit", "eval"}
        assert all(math.isfinite(v) and v >= 0 for v in c.values())
        if name != "zeroshot":  # 50 epochs of 12 steps (48 shots, batch 4) and a checkpoint each
            assert c["fit"] == pytest.approx(50 * (12 * c["step"] + c["save"])) and c["step"] > 0
    assert costs["zeroshot"]["fit"] == 0.0
    assert (tmp_path / "coop" / "metrics.jsonl").is_file()  # checkpoints written, as in a run


def test_interleave_runs_before_calls_untimed() -> None:
    clock = FakeClock()
    order: list[str] = []
    a, b = clock.spend([1.0, 2.0, 3.0]), clock.spend([1.0, 5.0, 7.0])
    prep = clock.spend([100.0, 100.0])
    fns = {"a": lambda: (order.append("a"), a()), "b": lambda: (order.append("b"), b())}
    times = interleave(fns, 2, clock=clock, before={"a": lambda: (order.append("prep"), prep())})
    assert times == {"a": [2.0, 3.0], "b": [5.0, 7.0]}  # the 100 s of the before calls are not counted
    assert order == ["a", "b", "prep", "a", "b", "prep", "a", "b"]  # warm-up round, then before each timed a
