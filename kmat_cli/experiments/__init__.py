"""Experiments on the core: grids of training cells (benchmark tables, tuning) and their reports.

- :mod:`~kmat_cli.experiments.cells`: a :class:`Cell` (one training run) and its folder protocol;
- :mod:`~kmat_cli.experiments.runner`: :func:`run_cells`, in this process, a local pool or on Ray;
- :mod:`~kmat_cli.experiments.variants`: table rows as :class:`Variant` objects, method labels;
- :mod:`~kmat_cli.experiments.flags`: a config as the dotted flags a cell carries;
- :mod:`~kmat_cli.experiments.benchmark`: ``kmat benchmark`` (Tables 2 and 3): :mod:`~.request` what was
  asked, :mod:`~.plan` its rows and cells, :mod:`~.benchmark_report` its report (:mod:`~.report` the text,
  :mod:`~.report_plots` the plots drawn by :mod:`~.plots`, :mod:`~.rule` the defaults rule);
- :mod:`~kmat_cli.experiments.tune`: ``kmat tune`` on the high-end validation split.

The names below are re-exported here; submodules are imported on first use, so importing the package costs
nothing at start-up.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Cell": "cells",
    "Outcome": "cells",
    "read_cells": "cells",
    "run_cell": "cells",
    "run_cells": "runner",
    "Variant": "variants",
    "METHODS": "variants",
    "METHOD_LABELS": "variants",
    "Plan": "plan",
    "Request": "request",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """``from kmat_cli.experiments import Cell`` and the like, importing the submodule on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
