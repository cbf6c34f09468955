"""Converter building blocks: the standard-library XLSX reader and the quota/group splitter."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import task_fakes as fakes
from kmat.tasks.converters.splitting import assign_groups, proportional, quotas
from kmat.tasks.converters.tables import read_csv, read_table, records

from kmat_cli.api import UsageError

ROWS = [
    ["midas_record_id", "midas_file_name", "midas_path", "length_(mm)"],
    [101, "a.jpeg", "malignant- bcc ", 4.5],
    [102, "b.jpg", "", 3],
    [],
    ["", "c.jpg", "benign-other", ""],
]


def test_xlsx_reader_matches_the_same_table_as_csv(tmp_path: Path) -> None:
    xlsx = read_table(fakes.write_xlsx(tmp_path / "t.xlsx", ROWS))
    csv = read_table(fakes.write_csv(tmp_path / "t.csv", ROWS))
    assert records(xlsx) == records(csv)
    assert records(xlsx)[0] == {
        "midas_record_id": "101",
        "midas_file_name": "a.jpeg",
        "midas_path": "malignant- bcc",
        "length_(mm)": "4.5",
    }
    assert xlsx[4] == ["", "c.jpg", "benign-other"]  # a gap before the first cell keeps column positions


def test_broken_xlsx_says_how_to_export_a_csv(tmp_path: Path) -> None:
    (tmp_path / "Metadata.xlsx").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match=r"Save As > CSV\) next to it as Metadata.csv"):
        read_table(tmp_path / "Metadata.xlsx")


def test_csv_reader_handles_bom_and_latin1(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes("\ufeffid;name\n1;Müller\n".encode())
    (tmp_path / "b.csv").write_bytes("id,name\n1,M\xfcller\n".encode("latin-1"))
    assert read_csv(tmp_path / "a.csv") == [["id", "name"], ["1", "Müller"]]
    assert read_csv(tmp_path / "b.csv") == [["id", "name"], ["1", "Müller"]]


@pytest.mark.parametrize("total", [0, 1, 7, 78, 780, 6432])
def test_proportional_sums_and_rounds_largest_remainder(total: int) -> None:
    sizes = proportional(total, (389, 155, 236))
    assert sum(sizes) == total
    assert all(abs(s - total * w / 780) < 1 for s, w in zip(sizes, (389, 155, 236), strict=True))
    if total == 780:
        assert sizes == [389, 155, 236]


def test_quotas_hit_both_margins_exactly() -> None:
    classes = {"benign": 437, "malignant": 210, "normal": 133}
    q = quotas(classes, [389, 155, 236])
    assert {k: sum(v) for k, v in q.items()} == classes
    assert [sum(q[k][s] for k in q) for s in range(3)] == [389, 155, 236]
    assert all(
        abs(q[k][s] - n * t / 780) < 1 for k, n in classes.items() for s, t in enumerate([389, 155, 236])
    )


def test_groups_never_straddle_and_singletons_meet_quotas() -> None:
    groups = {f"p{i}": Counter({"a": 1 + i % 3, "b": i % 2}) for i in range(60)}
    where = assign_groups(groups, (70, 15, 15), seed=5)
    assert set(where) == set(groups) and set(where.values()) == {"train", "val", "test"}
    assert where == assign_groups(groups, (70, 15, 15), seed=5)
    singles = {f"x{i}": Counter({"ab"[i % 2]: 1}) for i in range(100)}
    placed = assign_groups(singles, (70, 15, 15), seed=1)
    assert [sum(1 for s in placed.values() if s == split) for split in ("train", "val", "test")] == [
        70,
        15,
        15,
    ]
    per_class = Counter((next(iter(singles[g])), s) for g, s in placed.items())
    assert sorted([per_class[("a", "val")], per_class[("b", "val")]]) == [7, 8]  # 7.5 each, rounded
