"""Constants of the benchmark tests' small grids (imported by the tests and their conftest)."""

from __future__ import annotations

# The protocol's flags of every small grid here: fast, deterministic on CPU (the phantom task uses 1 thread).
SMALL = ["--task", "phantom", "--seeds", "1,2", "--epochs", "2", "--shots", "2", "--no-plots"]
METHODS = "zeroshot,coop,kmat"


def die_extracting_features(job: dict) -> dict:
    """A feature-extraction entry point whose worker process dies (a crash, not an exception)."""
    import os

    os._exit(3)
