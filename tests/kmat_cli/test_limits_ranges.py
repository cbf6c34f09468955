"""Method, transport and training options outside their ranges (negative loss weights, a momentum above 1,
a weight so large the loss overflows) are one ``kmat: error:`` line naming the key, exit code 2, before
any run folder exists, from ``--set``, ``--config`` and a task file alike.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faults import PHANTOM, assert_error, cli, custom_task, run_folders, train_args

pytestmark = pytest.mark.usefixtures("no_progress")


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ("method.lambda1=-1", "'method.lambda1' must be between 0 and 1000000"),
        ("method.lambda2=-0.5", "'method.lambda2' must be between 0"),
        ("method.lambda1=-1e308", "'method.lambda1'"),
        ("method.lambda1=1e308", "'method.lambda1'"),
        ("train.momentum=5", "'train.momentum' must be between 0 and 1"),
        ("transport.alpha=2", "'transport.alpha' must be between 0 and 1"),
        ("transport.epsilon=0", "'transport.epsilon' must be greater than 0"),
    ],
)
def test_out_of_range_option_is_refused_before_a_run_folder(
    tmp_path: Path, setting: str, needle: str
) -> None:
    out = tmp_path / "runs"
    assert_error(cli("train", *PHANTOM, "--set", setting, "--out", out), needle)
    assert not run_folders(out)


def test_out_of_range_in_a_config_or_task_file(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method:\n  name: kgcoop\n  weight: -8\n", encoding="utf-8")
    assert_error(cli("train", *PHANTOM, "--config", cfg, "--out", out), "'method.weight'")
    task = custom_task(tmp_path / "task", config={"backbone": {"name": "phantom"}, "method": {"lambda2": -1}})
    assert_error(cli(*train_args(task, out)), "'method.lambda2'")
    assert not run_folders(out)


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ("task.name.x=1", "'task.name' must name a task"),
        ("task.seed=-1", "'task.seed' must be between 0 and 4294967295"),
        ("task.seed=4294967296", "'task.seed'"),
        ("method.name.x=1", "'method.name' must name a method"),
    ],
)
def test_task_section_values_are_checked(tmp_path: Path, setting: str, needle: str) -> None:
    out = tmp_path / "runs"
    assert_error(cli("train", "--task", "phantom", "--set", setting, "--out", out), needle)
    assert not run_folders(out)
