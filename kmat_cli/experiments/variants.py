"""The rows of an experiment's tables: method variants as objects, and the one place method labels live.

A :class:`Variant` is a method with its own ``--set`` overrides (applied after the user's); a benchmark's
:class:`~kmat_cli.experiments.benchmark.Plan` builds them, and the report, the plots and the CSV read them
as they are (nothing downstream parses a ``--set`` string to find out what a row is). A :class:`Result` ties
one finished or failed cell to the (task, variant, seed) it was run for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

METHODS = ("zeroshot", "descriptions", "coop", "cocoop", "kgcoop", "biomedcoop", "kmat")  # Table 2 columns
METHOD_LABELS = {
    "zeroshot": "Zero-shot",
    "descriptions": "Descriptions",
    "coop": "CoOp",
    "cocoop": "CoCoOp",
    "kgcoop": "KgCoOp",
    "biomedcoop": "BiomedCoOp",
    "kmat": "K-MaT",
}
WITHOUT_TRANSPORT = ("method.transport=false",)  # K-MaT with its transport term off (Fig. 2's pair)
# The K-MaT rows of a knowledge benchmark, beside the methods' K-MaT (whose defaults include the label-free
# agreement rule of docs/defaults.md): fixed configurations without the rule, to measure it against.
AGREEMENT_OFF = "K-MaT, agreement off"
ANCHOR_ONLY = "K-MaT, anchor only"
TRANSPORT_ONLY = "K-MaT, transport only"
LAMBDA2_3 = "K-MaT, lambda2 3"
_FIXED = ("method.agreement=false",)
KNOWLEDGE_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (AGREEMENT_OFF, _FIXED),
    (ANCHOR_ONLY, (*_FIXED, "method.transport=false")),
    (TRANSPORT_ONLY, (*_FIXED, "method.anchor=false")),
    (LAMBDA2_3, (*_FIXED, "method.lambda2=3.0")),
)


def method_label(method: str) -> str:
    """The display name of a method (``kmat`` -> ``K-MaT``; an unknown plugin keeps its name)."""
    return METHOD_LABELS.get(method, method)


@dataclass(frozen=True)
class Variant:
    """A row of a table: a method with its own ``--set`` overrides (applied after the user's)."""

    label: str
    method: str
    sets: tuple[str, ...] = ()

    @property
    def is_default(self) -> bool:
        """The method as configured, with no overrides of its own."""
        return not self.sets

    @property
    def without_transport(self) -> bool:
        """K-MaT with only its transport term switched off."""
        return self.method == "kmat" and self.sets == WITHOUT_TRANSPORT


@dataclass(frozen=True)
class Result:
    """The outcome (a :class:`~kmat_cli.experiments.cells.Outcome`) of the cell run for (task, variant,
    seed)."""

    task: str
    variant: Variant
    seed: int
    outcome: Any
