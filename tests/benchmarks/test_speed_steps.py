"""benchmarks/speed_steps.py: rows 1-3's ratios come from the times measured, and the step functions run the
real paths (the trainer's step, the naive step's full context, the bound's own loss) on a toy BiomedCLIP."""

from __future__ import annotations

import pytest
import speed_report
import speed_steps
import torch
from _common import interleave, per_rep_ratio
from fake_clock import FakeClock
from speed_plan import Results


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
    times = speed_steps.time_steps(fns, 3, clock=clock)
    assert times["naive"] == pytest.approx([4.0, 6.0, 5.0])
    assert times["kmat_vs_naive"] == pytest.approx([0.2, 0.25, 0.5]) == times["kmat"]
    res = Results(device="cpu")
    speed_steps.step_results(times, res)
    assert res.steps["naive"] == pytest.approx(5.0) and res.steps["kmat"] == pytest.approx(0.25)
    assert res.speedup == pytest.approx(20.0)  # median of 20, 24, 10
    assert res.overhead == pytest.approx(2.0)  # median of 2, 1.25, 2
    assert res.fgw_share == pytest.approx(0.01)  # median of 0.01, 0.004, 0.01
    epochs = interleave(
        {"packed": clock.spend([9.0, 2.0, 2.5, 5.0]), "unpacked": clock.spend([9.0, 3.0, 2.5, 6.0])},
        3,
        clock=clock,
    )
    speed_steps.epoch_results(epochs, res)
    assert res.epochs == {"packed": pytest.approx(2.5), "unpacked": pytest.approx(3.0)}
    assert res.prepack_gain == pytest.approx(1.2)  # median of 1.5, 1, 1.2
    assert per_rep_ratio([2.0, 9.0, 1.0], [1.0, 3.0, 1.0]) == 2.0
    assert speed_report.last_line(res) == "speedup_vs_naive=20.0 overhead_vs_bound=2.00"
    text = speed_report.table(res)
    assert "| 1 | **speed-up vs naive** | 20.0x | >= 10x | yes |" in text
    assert "| 2 | **overhead vs bound** (kmat step / bound) | 2.00x | <= 1.3x | **no** |" in text
    assert "| 1 | gain of the packed text weights (unpacked / packed epoch) | 1.20x |  |  |" in text


def test_step_functions_run_the_real_paths(speed_toy) -> None:
    backbone, _, method, trainer, feats, labels = speed_toy
    size = backbone.preprocess_spec["image_size"]
    fns = speed_steps.step_fns(trainer, method, backbone, torch.randn(4, 3, size, size), feats, labels)
    before = method.prompts.ctx_class.detach().clone()
    times = speed_steps.time_steps(fns, 1)
    assert set(times) == {"naive", "kmat_vs_naive", "kmat", "bound", "fgw"}
    assert all(len(t) == 1 and t[0] > 0 for t in times.values())
    assert not torch.equal(before, method.prompts.ctx_class)  # the trainer's optimizer stepped
    assert backbone.truncate_prompts  # the naive step restores the real-length path ...
    assert backbone.prepack_weights  # ... and the packed weights (off in the naive step)
    epochs = speed_steps.epoch_fns(trainer, backbone, feats, labels, 2)
    before = method.prompts.ctx_class.detach().clone()
    assert set(interleave(epochs, 1)) == {"packed", "unpacked"}
    assert not torch.equal(before, method.prompts.ctx_class) and backbone.prepack_weights
    texts = tuple(t for g in method.prompts.groups for t in method.prompts.texts[g])
    full = backbone._prepared[(texts, method.prompts.context_length, False)]
    real = backbone._prepared[(texts, method.prompts.context_length, True)]
    assert full.embeds.shape[1] == 256 and real.embeds.shape[1] < 256  # naive: full context; kmat: real
    assert "6 prompts" in speed_steps.tokens_line(backbone, method)


def test_bound_is_the_same_loss_as_the_step(speed_toy, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound computes the method's own loss (same prompts, same features) and back-propagates it."""
    _, _, method, _, feats, labels = speed_toy
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
    speed_steps.bound_step(method, feats, labels)
    assert got[0] is True and got[1] == pytest.approx(float(want), rel=1e-5)
