"""Where things are, independent of where a test file is filed: the repository root and tests/support/."""

from __future__ import annotations

from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
REPO = SUPPORT.parents[1]
