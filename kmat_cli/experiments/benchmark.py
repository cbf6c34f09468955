"""``kmat benchmark``: the paper's Table 2 (methods) and Table 3 (K-MaT ablation) protocol as one grid.

A :class:`Request` (tasks, methods, seeds, ablation, common flags and ``--set`` overrides) becomes a
:class:`Plan`: one :class:`~kmat_cli.experiments.cells.Cell` per (task, row, seed), where a row is a
:class:`~kmat_cli.experiments.variants.Variant`: a method (Table 2) or a K-MaT ablation configuration
(Table 3). Identical cells are shared (full K-MaT is both the K-MaT column and the last ablation row). The
grid runs with :func:`kmat_cli.experiments.runner.run_cells` (resumable, shardable, local or Ray) and the
report is written from the cells' results, each tied to its row (:meth:`Plan.results`):

- ``report.md``: Table 2 (Hi / Lo / H rows per task, ``acc (F1)`` mean ± std over seeds, best per row in
  bold, average over tasks), Table 3 with ``--ablation``, wall times, plots, failed cells;
- ``report.csv``: one row per (table, task, row, modality, metric) with mean, std, seeds and per-seed values;
- ``benchmark.json``: the request, so that ``kmat benchmark merge`` can rebuild the plan from shard folders.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmat_cli import atomic, config, datafiles, registry
from kmat_cli.errors import UsageError
from kmat_cli.experiments import axes, knowledge_report, report, report_plots, rule
from kmat_cli.experiments.cells import Cell, Outcome, read_cells
from kmat_cli.experiments.flags import common_flags, flatten, task_slug
from kmat_cli.experiments.runner import run_cells
from kmat_cli.experiments.variants import (
    KNOWLEDGE_ROWS,
    METHODS,
    WITHOUT_TRANSPORT,
    Result,
    Variant,
    method_label,
)

REQUEST_FILE = "benchmark.json"
REQUEST_FORMAT = "kmat.benchmark/v1"
REPORT_MD = "report.md"
REPORT_CSV = "report.csv"
__all__ = ["METHODS", "Plan", "Request", "Variant", "common_flags", "flatten", "merge", "run", "write_report"]
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
_HI_VAL = ("validation", "accuracy")  # the defaults rule's inputs in a cell's result (report.RULE_INPUTS)
_COS_LO = ("checks", "trained", "cos_t_p", "lo")
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


@dataclass(frozen=True)
class Request:
    """What ``kmat benchmark`` was asked: ``flags`` are dotted config flags common to every cell (the
    ``--config`` file's content included), ``sets`` the user's ``--set`` overrides."""

    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    ablation: bool = False
    flags: Mapping[str, Any] = field(default_factory=dict)
    sets: tuple[str, ...] = ()
    defaults_rule: bool = False
    axes: axes.Axes = ()
    knowledge_rows: bool = False  # fixed K-MaT configurations without its agreement rule (variants)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REQUEST_FORMAT,
            "tasks": list(self.tasks),
            "methods": list(self.methods),
            "seeds": list(self.seeds),
            "ablation": self.ablation,
            "defaults_rule": self.defaults_rule,
            "flags": dict(self.flags),
            "sets": list(self.sets),
            "axes": axes.to_json(self.axes),
            "knowledge_rows": self.knowledge_rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Request:
        return cls(
            tasks=tuple(data["tasks"]),
            methods=tuple(data["methods"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            ablation=bool(data.get("ablation", False)),
            defaults_rule=bool(data.get("defaults_rule", False)),
            flags=dict(data.get("flags", {})),
            sets=tuple(data.get("sets", ())),
            axes=axes.from_json(data.get("axes", ())),
            knowledge_rows=bool(data.get("knowledge_rows", False)),
        )


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


# ------------------------------------------------------------------------------------------- running
def default_out(tasks: Sequence[str]) -> Path:
    """``runs/benchmark/<task>-<task>...``, each task by its name (:func:`~.flags.task_slug`)."""
    return Path("runs") / "benchmark" / "-".join(task_slug(t) for t in tasks)


def _same(request: Request, other: Request) -> bool:
    def key(r: Request) -> str:
        return json.dumps(r.to_dict(), sort_keys=True, default=str)

    return key(request) == key(other)


def check_folder(request: Request, out: Path) -> None:
    """A benchmark folder holds one request: a rerun of it resumes there; another request is a one-line
    UsageError (its report would replace the folder's report beside plots and cells of the first)."""
    if (out / REQUEST_FILE).is_file() and not _same(request, load_request(out)):
        raise UsageError(
            f"{out}: holds another benchmark ({REQUEST_FILE} differs: other tasks, methods, seeds or "
            "settings); pass a new --out (a rerun of the same grid resumes there)"
        )


def choose_folder(request: Request, tasks: Sequence[str]) -> Path:
    """The default folder of ``request``: ``runs/benchmark/<tasks>``, or ``<tasks>-2``, ``-3``, ... when that
    holds another request: the first one that holds this request (a rerun resumes it), else the first new
    one. Never a folder holding another benchmark."""
    base = default_out(tasks)
    n = 1
    while True:
        folder = base if n == 1 else base.with_name(f"{base.name}-{n}")
        if not (folder / REQUEST_FILE).is_file():
            return folder
        try:
            check_folder(request, folder)
            return folder
        except UsageError:
            n += 1


def run(request: Request, out: Path, **options: Any) -> tuple[Plan, list[Outcome]]:
    """Validate, save ``benchmark.json`` and run the request's grid (this shard of it) under ``out``;
    ``options`` are those of :func:`~kmat_cli.experiments.runner.run_cells` (executor, address,
    shard_index, num_shards, jobs, progress). ``out`` holding another request is refused
    (:func:`check_folder`)."""
    plan = Plan(request)
    plan.validate()
    check_folder(request, out)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / REQUEST_FILE, request.to_dict())
    return plan, run_cells(plan.cells(), out, **options)


def load_request(folder: Path) -> Request:
    path = Path(folder) / REQUEST_FILE
    try:
        data = datafiles.read_json(path)
    except datafiles.MissingFile as exc:
        raise UsageError(f"{path}: not a kmat benchmark folder (no {REQUEST_FILE})") from exc
    if not isinstance(data, dict) or data.get("format") != REQUEST_FORMAT:
        raise UsageError(f"{path}: not a {REQUEST_FORMAT} file")
    request = Request.from_dict(data)
    _check_plugins(request, path)
    return request


def _check_plugins(request: Request, path: Path) -> None:
    """The plugin names of a request read from ``path`` follow the rule for files
    (:func:`kmat_cli.registry.check_from_file`): no ``module:attr`` without the user's opt-in."""
    from kmat_cli import registry

    for kind, values in (("tasks", request.tasks), ("methods", request.methods)):
        for value in values:
            registry.check_from_file(kind, value, path, kind)
    for key, value in request.flags.items():
        section, _, option = str(key).partition(".")
        if section in config.PLUGIN_SECTIONS and option in ("", "name"):
            registry.check_from_file(config.PLUGIN_SECTIONS[section], value, path, f"flags.{key}")


def merge(shards: Sequence[Path], out: Path) -> tuple[Plan, list[Outcome]]:
    """The outcomes of one request whose shards ran into separate folders (all with the same request)."""
    if not shards:
        raise UsageError("kmat benchmark merge needs at least one shard folder")
    requests = [load_request(s) for s in shards]
    for shard, req in zip(shards[1:], requests[1:], strict=True):
        if req != requests[0]:
            raise UsageError(f"{shard}: ran a different benchmark than {shards[0]} ({REQUEST_FILE} differs)")
    plan = Plan(requests[0])
    found = read_cells([Path(s) for s in shards], failed=True)
    outcomes = [found.get(c.key) or Outcome(c, "missing") for c in plan.cells()]
    atomic.own(out)
    check_folder(requests[0], out)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out / REQUEST_FILE, requests[0].to_dict())
    return plan, outcomes


# ------------------------------------------------------------------------------------------ reporting
def _protocol(plan: Plan) -> str:
    req = plan.request
    try:
        cfg = plan.config(
            plan.block_names[0], (plan.methods or plan.ablation or plan.knowledge)[-1], req.seeds[0]
        )
    except UsageError:
        return ""
    t = cfg["train"]
    transport = cfg["transport"]
    shown = ("epsilon", "alpha", "cost", "center", "normalize")
    options = ", ".join(f"{k} {v}" for k, v in transport.items() if k in shown)
    kmat = plan.config(plan.block_names[0], Variant("K-MaT", "kmat"), req.seeds[0])["method"]
    method = ", ".join(
        f"{k} {kmat[k]!r}" if isinstance(kmat[k], str) else f"{k} {kmat[k]}"
        for k in ("lambda1", "lambda2", "description_template", "agreement")
        if k in kmat
    )
    axis = [f"{k} in {{{', '.join(map(str, v))}}}" for k, v in req.axes]
    regime = (
        "" if any(k == axes.KNOWLEDGE for k, _ in req.axes) else f"; knowledge {cfg['knowledge']['regime']}"
    )
    return (
        f"Protocol: backbone `{cfg['backbone']['name']}`, {t['shots']} shots per class, {t['epochs']} epochs, "
        f"batch {t['batch_size']}, lr {t['lr']}; transport `{transport['name']}`"
        + (f" ({options})" if options else "")
        + (f"; K-MaT {method}" if method else "")
        + regime
        + (f"; axes: {'; '.join(axis)}" if axis else "")
        + f"; seeds {', '.join(map(str, req.seeds))}."
        + (f" Overrides: `{' '.join(req.sets)}`." if req.sets else "")
    )


def _rule_outcome(
    plan: Plan, layout: report.Layout, table: report.Table, by_key: Mapping[str, Outcome]
) -> str:
    """The defaults rule applied per task (:mod:`kmat_cli.experiments.rule`) to this benchmark's cells: step 1
    reads the initial checks of every finished cell of the first seed (any table), step 2 the candidates."""
    first = layout.seeds[0]
    parts = []
    for task in layout.tasks:
        keys = {
            key
            for t in layout.tables
            for (k_task, _, seed), key in t.cells.items()
            if (k_task, seed) == (task, first)
        }
        checks = [
            (by_key[key].result or {}).get("checks") or {}
            for key in sorted(keys)
            if key in by_key and by_key[key].status == "done"
        ]
        candidates = []
        for variant in plan.candidates:
            transport = plan.config(task, variant, first)["transport"]
            candidates.append(
                rule.Candidate(
                    label=variant.label,
                    alpha=float(transport["alpha"]),
                    center=bool(transport["center"]),
                    normalize=bool(transport["normalize"]),
                    hi_val=100.0 * report.rule_input(layout, table, by_key, task, variant.label, _HI_VAL),
                    cos_lo=report.rule_input(layout, table, by_key, task, variant.label, _COS_LO),
                )
            )
        checked = rule.template_checks(checks)
        parts.append(rule.markdown(task, checked, candidates, len(layout.seeds)))
    return "\n".join(parts)


def render(plan: Plan, outcomes: Sequence[Outcome], out: Path, *, plots: bool = True) -> tuple[str, str]:
    """(markdown, CSV) of the report of ``outcomes`` under ``out`` (plots written into ``out/plots``)."""
    layout = plan.layout()
    by_key = {o.cell.key: o for o in outcomes if o.status in ("done", "failed")}
    failed = [o for o in outcomes if o.status == "failed"]
    missing = [o.cell for o in outcomes if o.status == "missing"]
    other = len({o.cell.key for o in outcomes if o.status == "other-shard"})
    req = plan.request
    parts = [
        f"# kmat benchmark: {', '.join(req.tasks)}",
        "",
        _protocol(plan),
        "",
        "Accuracy with macro-F1 in brackets, in %, mean ± std (sample std) over seeds, or mean (n=1) from "
        "one seed; H is the harmonic mean of Hi and Lo per run. Best per row in bold. † fewer seeds than planned (failed cells). "
        f"Every number per seed: [{REPORT_CSV}]({REPORT_CSV}).",
        "",
    ]
    for table in layout.tables:
        if table.kind == "methods":
            parts += [
                "## Methods (Table 2 layout)",
                "",
                report.METHODS_LEGEND,
                "",
                report.methods_markdown(layout, table, by_key),
            ]
        elif table.kind == "rule":
            parts += [
                "## Defaults rule (docs/defaults.md)",
                "",
                "The transport candidates of step 2 (relative columns against the first candidate). The rule "
                "reads only Hi val and cos(t_lo, p_lo); Lo is shown beside, never used.",
                "",
                report.ablation_markdown(layout, table, by_key),
                _rule_outcome(plan, layout, table, by_key),
            ]
        elif table.kind == "knowledge":
            parts += [
                "## K-MaT configurations (knowledge benchmark)",
                "",
                "K-MaT with its defaults uses the agreement rule (docs/defaults.md); these fixed configurations, "
                "without it, are what it is measured against.",
                "",
                report.methods_markdown(layout, table, by_key),
            ]
        else:
            parts += [
                "## K-MaT ablation (Table 3 layout)",
                "",
                "Relative improvement of mean H over the CE-only row (shared context, no CSC, MSC, anchor or "
                "transport).",
                "",
                report.ablation_markdown(layout, table, by_key),
            ]
    knowledge = knowledge_report.section(plan, layout, by_key, layout.tables)
    if knowledge:
        parts += [knowledge]
    timing = report.timing_markdown(layout, layout.tables[0], by_key)
    if timing:
        parts += ["## Wall time", "", timing]
    if plots:
        section = report_plots.section(plan.results(outcomes), out)
        if section:
            parts += [section]
    parts += [report.failures_markdown(failed, missing, other)]
    return "\n".join(parts), report.report_csv(layout, by_key)


def write_report(plan: Plan, outcomes: Sequence[Outcome], out: Path, *, plots: bool = True) -> Path:
    """Write ``report.md`` and ``report.csv`` into ``out``; returns the markdown path."""
    markdown, table = render(plan, outcomes, out, plots=plots)
    atomic.write_text(out / REPORT_CSV, table)
    atomic.write_text(out / REPORT_MD, markdown)
    return out / REPORT_MD
