"""A ``kmat benchmark`` plan: the rows of each table asked for and one
:class:`~kmat_cli.experiments.cells.Cell` per (block, row, seed).

A row is a :class:`~kmat_cli.experiments.variants.Variant`: a method (Table 2), a K-MaT ablation
configuration (Table 3), a defaults-rule candidate or a fixed K-MaT configuration (knowledge rows). A cell is
keyed by the identity of its resolved config (:func:`config_identity`), so identical cells are shared (full
K-MaT is both the K-MaT column and the last ablation row); :meth:`Plan.results` ties each outcome to its row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kmat_cli import config, registry
from kmat_cli.errors import UsageError
from kmat_cli.experiments import axes, report
from kmat_cli.experiments.cells import Cell, Outcome
from kmat_cli.experiments.flags import flatten
from kmat_cli.experiments.request import Request
from kmat_cli.experiments.variants import KNOWLEDGE_ROWS, WITHOUT_TRANSPORT, Result, Variant, method_label

_OFF = ("method.anchor=false", *WITHOUT_TRANSPORT)
# Table 3: (label, --set overrides of K-MaT); the first row is the baseline of the relative improvement.
ABLATION: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("CE only", ("method.csc=false", "method.msc=false", *_OFF)),
    ("+ CSC/MSC", _OFF),
    ("+ CSC/MSC + anchor", WITHOUT_TRANSPORT),
    ("+ CSC/MSC + transport", ("method.anchor=false",)),
    ("full K-MaT", ()),
)
ALPHAS = (0.1, 0.5, 0.9)  # METHOD.md: report the transport's alpha in {0.1, 0.5, 0.9} in the ablation
_LITERAL = 'method.description_template="{description}"'
_AWARE = 'method.description_template="{modality}: {description}"'
_PLAIN = ("transport.center=false", "transport.normalize=false")
_SHAPED = ("transport.center=true", "transport.normalize=true")
_NO_RULE = "method.agreement=false"
# The deviations from the literal method (docs/method.md): the description template and the transport's
# shape, without the agreement rule (full K-MaT adds it); rows for transports with ``center``/``normalize``
# options only.
DEVIATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("literal K-MaT (bare descriptions, plain transport)", (_NO_RULE, _LITERAL, *_PLAIN)),
    ("modality-aware anchor", (_NO_RULE, _AWARE, *_PLAIN)),
    ("centred/normalised transport", (_NO_RULE, _LITERAL, *_SHAPED)),
    ("modality-aware anchor + centred/normalised transport", (_NO_RULE, _AWARE, *_SHAPED)),
)
# Run-environment keys that do not change what a cell computes: left out of its identity.
RUNTIME_KEYS = ("out", "train.device", "train.threads", "train.num_workers", "train.eval_batch_size")


def config_identity(cfg: Mapping[str, Any]) -> str:
    """SHA-256 (16 hex digits) of a resolved config without :data:`RUNTIME_KEYS`: equal for two spellings
    of one configuration, different when a default it relies on changes."""
    flat = {k: v for k, v in flatten(cfg).items() if k not in RUNTIME_KEYS}
    blob = json.dumps(flat, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def rule_candidates() -> list[Variant]:
    """The defaults rule's transport candidates (docs/defaults.md, step 2): alpha x center x normalize,
    K-MaT otherwise as configured."""
    rows = []
    for alpha in ALPHAS:
        for center in (False, True):
            for normalize in (False, True):
                shape = {(False, False): "", (True, False): ", centred", (False, True): ", normalised"}
                label = f"alpha {alpha:g}" + shape.get((center, normalize), ", centred + normalised")
                sets = (
                    f"transport.alpha={alpha}",
                    f"transport.center={str(center).lower()}",
                    f"transport.normalize={str(normalize).lower()}",
                )
                rows.append(Variant(label, "kmat", sets))
    return rows


def _set_key(item: str) -> str:
    return item.partition("=")[0].strip()


def _knows(item: str) -> bool:
    """A ``--set`` item of the ``knowledge`` section (moot for a method that reads no descriptions)."""
    return _set_key(item).startswith("knowledge.")


class Plan:
    """The cells of a request and the tables they fill."""

    def __init__(self, request: Request) -> None:
        if not request.tasks or not request.seeds:
            raise UsageError("kmat benchmark needs at least one --task and one --seeds value")
        if not (request.methods or request.ablation or request.defaults_rule or request.knowledge_rows):
            raise UsageError(
                "kmat benchmark needs --methods, --ablation, --defaults-rule, --knowledge or a mix"
            )
        self.request = request
        self.blocks = {b.name: b for b in axes.blocks(request.tasks, request.axes)}
        self._configs: dict[tuple[str, Variant, int], dict[str, Any]] = {}
        self.methods = [Variant(method_label(m), m) for m in dict.fromkeys(request.methods)]
        self.ablation = self._ablation_rows() if request.ablation else []
        self.candidates = self._rule_rows() if request.defaults_rule else []
        rows = KNOWLEDGE_ROWS if request.knowledge_rows else ()
        self.knowledge = [Variant(label, "kmat", sets) for label, sets in rows]

    @property
    def block_names(self) -> list[str]:
        """The report blocks: each task under each combination of the axes' values (:mod:`.axes`)."""
        return list(self.blocks)

    def _rule_rows(self) -> list[Variant]:
        cfg = self.config(self.block_names[0], Variant("K-MaT", "kmat"), self.request.seeds[0])
        if "center" not in cfg["transport"] or "normalize" not in cfg["transport"]:
            name = cfg["transport"]["name"]
            raise UsageError(
                f"--defaults-rule needs a transport with center/normalize options; {name} has none"
            )
        return rule_candidates()

    @property
    def tables(self) -> list[tuple[str, list[Variant]]]:
        """(kind, rows) of every table asked for, in report order."""
        kinds = (
            ("methods", self.methods),
            ("ablation", self.ablation),
            ("rule", self.candidates),
            ("knowledge", self.knowledge),
        )
        return [(kind, rows) for kind, rows in kinds if rows]

    def _ablation_rows(self) -> list[Variant]:
        rows = [Variant(label, "kmat", sets) for label, sets in ABLATION]
        cfg = self.config(self.block_names[0], rows[-1], self.request.seeds[0])
        if "center" in cfg["transport"] and "normalize" in cfg["transport"]:
            rows += [Variant(label, "kmat", sets) for label, sets in DEVIATIONS]
        alpha = cfg["transport"].get("alpha")
        if isinstance(alpha, (int, float)) and not isinstance(alpha, bool):
            full = len(ABLATION) - 1
            rows[full] = Variant(f"full K-MaT ({cfg['transport']['name']}, alpha {alpha:g})", "kmat")
            rows += [
                Variant(f"full K-MaT, alpha {a:g}", "kmat", (f"transport.alpha={a}",))
                for a in ALPHAS
                if abs(a - alpha) > 1e-12
            ]
        return rows

    def _spelling(self, block: str, variant: Variant, seed: int) -> tuple[dict[str, Any], tuple[str, ...]]:
        """(flags, sets) of (block, row, seed): common flags, then task/method/seed; user sets, then the
        block's axis values, then the row's (a later one replaces an earlier one of the same key). A method
        that reads no descriptions skips the knowledge axis: its cell is shared by every regime."""
        b = self.blocks[block]
        flags = {**self.request.flags, "task.name": b.task, "method.name": variant.method, "train.seed": seed}
        own = {_set_key(s) for s in variant.sets}
        blind = not getattr(registry.get("methods", variant.method), "reads_descriptions", True)
        axis = tuple(s for s in b.sets if _set_key(s) not in own and not (blind and _knows(s)))
        mine = own | {_set_key(s) for s in axis}
        sets = tuple(s for s in self.request.sets if _set_key(s) not in mine) + axis + variant.sets
        return flags, sets

    def cell(self, task: str, variant: Variant, seed: int) -> Cell:
        """The cell of (task, row, seed), keyed by the identity of its resolved config."""
        flags, sets = self._spelling(task, variant, seed)
        return Cell(flags=flags, sets=sets, identity=config_identity(self.config(task, variant, seed)))

    def config(self, task: str, variant: Variant, seed: int) -> dict[str, Any]:
        """The resolved config of (task, row, seed) (built once per plan)."""
        key = (task, variant, seed)
        if key not in self._configs:
            flags, sets = self._spelling(task, variant, seed)
            self._configs[key] = config.build(flags={**flags, "out": "."}, sets=sets)
        return self._configs[key]

    def layout(self) -> report.Layout:
        tables = []
        for kind, rows in self.tables:
            cells = {
                (t, v.label, s): self.cell(t, v, s).key
                for t in self.block_names
                for v in rows
                for s in self.request.seeds
            }
            info = {v.label: v for v in rows}
            tables.append(report.Table(kind, [v.label for v in rows], cells, info))
        what = "blocks (task x axis values)" if self.request.axes else "tasks"
        return report.Layout(self.block_names, list(self.request.seeds), tables, what)

    def entries(self) -> Iterator[tuple[str, Variant, int, Cell]]:
        """(task, row, seed, cell) of every table, in table order (a shared cell once per table)."""
        for _, rows in self.tables:
            for t in self.block_names:
                for v in rows:
                    for s in self.request.seeds:
                        yield t, v, s, self.cell(t, v, s)

    def results(self, outcomes: Sequence[Outcome]) -> list[Result]:
        """Each outcome tied to the (task, row, seed) it was run for, once per cell: a cell shared by two
        tables (full K-MaT) keeps the row of the first table (its method column)."""
        by_key = {o.cell.key: o for o in outcomes}
        found: dict[str, Result] = {}
        for t, v, s, cell in self.entries():
            if cell.key in by_key:
                found.setdefault(cell.key, Result(t, v, s, by_key[cell.key]))
        return list(found.values())

    def cells(self) -> list[Cell]:
        """The distinct cells, in table order."""
        found: dict[str, Cell] = {}
        for *_, cell in self.entries():
            found.setdefault(cell.key, cell)
        return list(found.values())

    def validate(self) -> None:
        """Build every cell's config (bad usage is a UsageError before anything runs)."""
        for _, rows in self.tables:
            for t in self.block_names:
                for v in rows:
                    try:
                        self.config(t, v, self.request.seeds[0])
                    except UsageError as exc:
                        raise UsageError(f"{t} / {v.label}: {exc}") from exc
