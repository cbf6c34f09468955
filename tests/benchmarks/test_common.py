"""benchmarks/_common.py: interleaved timing counts only the timed calls."""

from __future__ import annotations

from _common import interleave
from fake_clock import FakeClock


def test_interleave_runs_before_calls_untimed() -> None:
    clock = FakeClock()
    order: list[str] = []
    a, b = clock.spend([1.0, 2.0, 3.0]), clock.spend([1.0, 5.0, 7.0])
    prep = clock.spend([100.0, 100.0])
    fns = {"a": lambda: (order.append("a"), a()), "b": lambda: (order.append("b"), b())}
    times = interleave(fns, 2, clock=clock, before={"a": lambda: (order.append("prep"), prep())})
    assert times == {"a": [2.0, 3.0], "b": [5.0, 7.0]}  # the 100 s of the before calls are not counted
    assert order == ["a", "b", "prep", "a", "b", "prep", "a", "b"]  # warm-up round, then before each timed a
