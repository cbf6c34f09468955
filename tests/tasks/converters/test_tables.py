"""Tables of a converted dataset read: the standard-library XLSX reader against the same CSV, CSV encodings."""

from __future__ import annotations

from pathlib import Path

import pytest
import task_fakes as fakes
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
