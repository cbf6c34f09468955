"""benchmarks/speed_report.py: the table keeps its rows and format, with the run and protocol times derived
from the measured parts (speed_plan.Results)."""

from __future__ import annotations

import re

from speed_plan import Results
from speed_report import last_line, table

LAST_LINE = re.compile(r"^speedup_vs_naive=\d+\.\d overhead_vs_bound=\d+\.\d\d$")


def test_table_rows_and_projection() -> None:
    res = Results(device="cpu", speedup=12.34, overhead=1.1, fgw_share=0.003)
    res.steps = {"naive": 2.0, "kmat": 0.16, "bound": 0.15, "fgw": 0.001}
    res.runs = {
        "zeroshot": {"setup": 1.0, "step": 0.0, "save": 0.0, "fit": 0.0, "eval": 0.5},
        "kmat": {"setup": 3.0, "step": 0.16, "save": 0.01, "fit": 100.0, "eval": 0.5},
    }
    res.unique_images, res.encode_rate, res.encode_ratio = 2736, 10.0, 0.97
    res.predict, res.predict_rate = {"phantom": 0.85}, {"phantom": 3000.0}
    res.rss_mb = {"train": 1700.0}
    assert res.train_run_s() == 103.0
    encode, runs, total = res.protocol_s()
    assert (encode, runs, total) == (273.6, 3 * (1.5 + 103.5), 273.6 + 315.0)
    text = table(res)
    lines = text.splitlines()
    assert lines[0] == "| # | measurement | value | goal | met |"
    assert all(line.startswith("| ") and line.count(" | ") == 4 for line in lines[2:])
    assert "| 103.00 s | < 2 min | yes |" in text
    assert "| 97% | >= 95% | yes |" in text
    assert "| 85% | >= 90% | **no** |" in text
    assert "| 6 | peak RSS, K-MaT training run | 1700 MB |  |  |" in text
    assert LAST_LINE.match(last_line(res))
