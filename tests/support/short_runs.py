"""A run of a few seconds, as Python API keywords (``SHORT``) and as command-line flags (``SHORT_FLAGS``)."""

from __future__ import annotations

SHORT = {"epochs": 1, "shots": 2, "threads": 1}  # a run of a few seconds
SHORT_FLAGS = ["--epochs", "1", "--shots", "2", "--threads", "1"]  # the same run as command-line flags
