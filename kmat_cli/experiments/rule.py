"""The rule that chooses K-MaT's defaults (docs/defaults.md), applied to a benchmark's cells.

It reads label-free quantities only: the prompts' and prototypes' cosines at initialisation, high-end
*validation* accuracy, and the trained prompts' cosine to the low-end prototypes. Low-end test numbers are
never an input; the report prints them beside the outcome, whatever they say.

1. Template: for each ``description_template`` seen at the first seed, the gap
   ``| mean_k cos(p_hi,k, p_lo,k) - mean_k cos(t_hi,k, t_lo,k) |`` at initialisation (``checks.json``);
   the template with the smaller gap reproduces the prompts' modality gap and is chosen.
2. Transport: among the candidates (alpha x center x normalize, trained with one template over the seeds),
   keep those whose mean high-end validation accuracy is within :data:`VAL_MARGIN` points of the best;
   choose the highest mean ``cos(t_lo,k, p_lo,k)``; differences below :data:`TIE` are ties, broken towards
   the literal reading (alpha closest to 0.1, then center off, then normalize off).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

VAL_MARGIN = 1.0  # points of high-end validation accuracy
TIE = 0.005  # of cos(t_lo, p_lo)
LITERAL_ALPHA = 0.1
TEMPLATES = ("{modality}: {description}", "{description}")


@dataclass(frozen=True)
class TemplateCheck:
    """Step 1's inputs for one template: mean cosines at initialisation (first seed)."""

    template: str
    cos_p_hi_lo: float
    cos_t_hi_lo: float

    @property
    def gap(self) -> float:
        return abs(self.cos_p_hi_lo - self.cos_t_hi_lo)


@dataclass(frozen=True)
class Candidate:
    """Step 2's inputs for one transport setting: means over seeds (NaN where no cell recorded them)."""

    label: str
    alpha: float
    center: bool
    normalize: bool
    hi_val: float  # percent
    cos_lo: float

    def literalness(self) -> tuple[float, bool, bool]:
        """Sort key: smaller is closer to the literal reading."""
        return (abs(self.alpha - LITERAL_ALPHA), self.center, self.normalize)


def template_checks(checks: Sequence[Mapping]) -> list[TemplateCheck]:
    """One :class:`TemplateCheck` per template among ``checks.json`` contents (their ``init`` part); the
    first seen per template wins (all cells of one seed share the init)."""
    found: dict[str, TemplateCheck] = {}
    for check in checks:
        init = check.get("init") or {}
        template = init.get("description_template")
        if not isinstance(template, str) or template in found:
            continue
        try:
            found[template] = TemplateCheck(template, float(init["cos_p_hi_lo"]), float(init["cos_t_hi_lo"]))
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(
        found.values(), key=lambda c: TEMPLATES.index(c.template) if c.template in TEMPLATES else 99
    )


def choose_template(checks: Sequence[TemplateCheck]) -> TemplateCheck | None:
    """Step 1: the template with the smallest gap (None when there is nothing to compare)."""
    return min(checks, key=lambda c: c.gap) if checks else None


def eligible(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Candidates whose high-end validation accuracy is within :data:`VAL_MARGIN` of the best."""
    measured = [c for c in candidates if not math.isnan(c.hi_val) and not math.isnan(c.cos_lo)]
    if not measured:
        return []
    best = max(c.hi_val for c in measured)
    return [c for c in measured if c.hi_val >= best - VAL_MARGIN - 1e-9]


def choose_transport(candidates: Sequence[Candidate]) -> Candidate | None:
    """Step 2: among :func:`eligible`, the highest ``cos_lo``; within :data:`TIE` of it, the most literal."""
    kept = eligible(candidates)
    if not kept:
        return None
    top = max(c.cos_lo for c in kept)
    tied = [c for c in kept if c.cos_lo >= top - TIE]
    return min(tied, key=Candidate.literalness)


def markdown(task: str, checks: Sequence[TemplateCheck], candidates: Sequence[Candidate], seeds: int) -> str:
    """The rule's section of a benchmark report for one task: inputs, kept candidates and outcome."""
    lines = [f"### {task}", ""]
    template = choose_template(checks)
    if template is None:
        lines.append("1. **Template**: no cell recorded its checks at initialisation; not applied.")
    else:
        t_cos = checks[0].cos_t_hi_lo
        parts = "; ".join(
            f'`"{c.template}"`: mean cos(p_hi, p_lo) {c.cos_p_hi_lo:.3f}, gap {c.gap:.3f}' for c in checks
        )
        lines.append(
            f"1. **Template** (first seed, at initialisation): mean cos(t_hi, t_lo) {t_cos:.3f}; {parts}. "
            f'Chosen: `"{template.template}"`'
            + (
                ""
                if len(checks) > 1
                else " (the only template measured; add the literal row with --ablation)"
            )
            + "."
        )
    kept = eligible(candidates)
    chosen = choose_transport(candidates)
    if chosen is None:
        lines.append("2. **Transport**: no candidate finished with its rule inputs; not applied.")
        return "\n".join(lines) + "\n"
    best = max(c.hi_val for c in kept)
    lines.append(
        f"2. **Transport** ({len(candidates)} candidates, mean over {seeds} seeds): best high-end validation "
        f"{best:.1f}; within {VAL_MARGIN:g} point: "
        + ", ".join(f"{c.label} ({c.hi_val:.1f}, cos {c.cos_lo:.3f})" for c in kept)
        + f". Chosen (highest cos(t_lo, p_lo), ties below {TIE:g} to the literal reading): **{chosen.label}**."
    )
    return "\n".join(lines) + "\n"
