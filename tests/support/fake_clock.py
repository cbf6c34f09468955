"""A clock for timing tests: it only moves when a timed function says so."""

from __future__ import annotations

from collections.abc import Callable


class FakeClock:
    """Reads ``now``; functions made by :meth:`spend` advance it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: list[float]) -> Callable[[], None]:
        """A function that takes ``seconds[i]`` on its i-th call (warm-up calls included)."""
        calls = iter(seconds)
        return lambda: setattr(self, "now", self.now + next(calls))
