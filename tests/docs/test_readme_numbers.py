"""The README's phantom-world numbers are those of the committed reports (docs/benchmark-*/report.csv)."""

from __future__ import annotations

import csv
import re
import statistics
from pathlib import Path

import pytest
from repo_paths import REPO

README = REPO / "README.md"
KNOWLEDGE_CSV = REPO / "docs" / "benchmark-knowledge" / "report.csv"
KNOWLEDGE_MD = REPO / "docs" / "benchmark-knowledge" / "report.md"
PHANTOM_CSV = REPO / "docs" / "benchmark-phantom" / "report.csv"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _pooled_lo(rows: list[dict[str, str]], label: str, regime: str) -> float:
    """Mean low-end accuracy of ``label`` over every (world, seed) run of ``regime`` (percent)."""
    values = [
        float(v)
        for r in rows
        if r["row"] == label
        and r["modality"] == "lo"
        and r["metric"] == "accuracy"
        and f"knowledge.regime={regime})" in r["task"]
        for k, v in r.items()
        if k.startswith("seed_") and v
    ]
    assert values, (label, regime)
    return statistics.fmean(values)


def _readme_table(header_start: str) -> tuple[list[str], list[list[str]]]:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    body = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        body.append([c.strip() for c in line.strip("|").split("|")])
    return header, body


def test_readme_knowledge_table_equals_the_committed_report() -> None:
    rows = _rows(KNOWLEDGE_CSV)
    header, body = _readme_table("| low-end accuracy % |")
    regimes = header[1:]
    assert regimes == ["shipped", "partial", "pooled", "generic", "shuffled"]
    assert len(body) >= 4
    for cells in body:
        label = cells[0].replace("**", "")
        for regime, text in zip(regimes, cells[1:], strict=True):
            got = float(re.match(r"\**([\d.]+)", text).group(1))
            assert got == pytest.approx(_pooled_lo(rows, label, regime), abs=0.051), (label, regime)


def test_readme_paired_differences_are_quoted_from_the_committed_report() -> None:
    readme = " ".join(README.read_text(encoding="utf-8").split())
    report = KNOWLEDGE_MD.read_text(encoding="utf-8")
    quoted = re.findall(r"[+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\]", readme)
    assert quoted, "the README quotes no paired difference"
    for q in quoted:
        assert q in report, q


def test_readme_methods_numbers_of_the_first_report() -> None:
    rows = _rows(PHANTOM_CSV)
    readme = " ".join(README.read_text(encoding="utf-8").split())
    lo = {
        r["row"]: float(r["mean_pct"])
        for r in rows
        if (r["table"], r["task"], r["modality"], r["metric"]) == ("methods", "phantom", "lo", "accuracy")
    }
    claims = {
        "K-MaT": "K-MaT with its defaults reaches low-end {:.1f} %",
        "BiomedCoOp": "BiomedCoOp {:.1f}",
        "CoOp": "CoOp {:.1f}",
        "Zero-shot": "Zero-shot {:.1f} %",
    }
    for label, claim in claims.items():
        assert claim.format(lo[label]) in readme, label
