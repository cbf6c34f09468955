"""The Python API as a type checker reads it: mypy, with the project's own configuration, accepts a user's
script that uses ``kmat`` as documented and rejects one that misuses it, each misuse on its own line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

RIGHT = """\
import kmat

run: kmat.Run = kmat.train(task="phantom", epochs=2, shots=2, method={"lambda1": 2.0}, train={"lr": 0.01})
status: str = run.status
again = kmat.Run("runs/train/phantom-kmat-s1-1")
history: list[dict] = run.history
names: list[str] = kmat.load_prompts(run).class_names
rows = kmat.predict("scans/", run=run, progress=False)
label: str | None = rows[0]["label"]
probabilities: dict[str, float] | None = rows[0]["probabilities"]
cfg = kmat.train_config(task="phantom", seed=3, sets=["train.lr=0.01"])
"""

# each line after the import is one misuse, with the error code mypy must give it
WRONG = {
    'kmat.predict("scans/")[0]["lable"]': "typeddict-item",
    'kmat.train(task="phantom", epochs="2")': "arg-type",
    'kmat.train(task="phantom", epoch=2)': "call-arg",
    'kmat.load_prompts("p.safetensors").class_name': "attr-defined",
    'count: int = kmat.Run("runs/train/x").status': "assignment",
    "kmat.predict(3.5)": "arg-type",
}


def mypy(*files: Path) -> str:
    """mypy's report on ``files``, run from the repository root (its pyproject configuration and cache)."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--show-error-codes", *map(str, files)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


@pytest.mark.slow
def test_mypy_accepts_the_documented_use_and_rejects_each_misuse(tmp_path: Path) -> None:
    right, wrong = tmp_path / "right.py", tmp_path / "wrong.py"
    right.write_text(RIGHT, encoding="utf-8")
    wrong.write_text("import kmat\n\n" + "\n".join(WRONG) + "\n", encoding="utf-8")
    report = mypy(right, wrong)
    assert "right.py" not in report, report
    found: dict[int, set[str]] = {}
    for line, code in re.findall(r"wrong\.py:(\d+): error: .*\[([a-z-]+)\]$", report, re.M):
        found.setdefault(int(line), set()).add(code)
    for line, code in enumerate(WRONG.values(), start=3):
        assert code in found.get(line, set()), f"line {line}: no [{code}]\n{report}"
