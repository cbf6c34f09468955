"""Helpers of the user-experience tests (importable by name: ``from ux_helpers import ...``)."""

from __future__ import annotations

SHORT = {"epochs": 1, "shots": 2, "threads": 1}  # a run of a few seconds
