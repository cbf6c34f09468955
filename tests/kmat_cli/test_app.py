"""The CLI through its real entry point (the installed `kmat` script in a subprocess, or its function in this
process): help that reads at 80 columns, Click's errors as one line that points the way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kmat_runner import cli
from repo_paths import REPO

from kmat_cli import registry


def kmat(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    exe = str(Path(sys.executable).with_name("kmat"))
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=300
    )


def test_list_shows_all_four_kinds_and_every_built_in() -> None:
    result = kmat("list")
    assert result.returncode == 0, result.stderr
    for kind in registry.KINDS:
        assert kind in result.stdout
        for name in registry.names(kind):
            assert name in result.stdout


def test_list_one_kind_and_a_misspelt_kind() -> None:
    result = kmat("list", "tasks")
    assert result.returncode == 0 and "chest" in result.stdout and "fgw" not in result.stdout
    bad = kmat("list", "transprots")
    assert bad.returncode == 2
    assert "did you mean 'transports'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_unknown_task_exits_2_with_suggestion(tmp_path: Path) -> None:
    result = kmat("train", "--task", "chst", "--out", str(tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "kmat: error: unknown task 'chst' (did you mean 'chest'?); known: breast, chest,"
    )
    assert not list(tmp_path.iterdir())  # nothing half-made


def test_malformed_yaml_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 3\n   lr: 0.1\n")
    result = kmat("train", "--config", str(bad), "--out", str(tmp_path / "runs"))
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and str(bad) in line and "line 3" in line
    assert not (tmp_path / "runs").exists()


def test_unknown_set_key_exits_2() -> None:
    result = kmat("train", "--set", "train.epoch=3")
    assert result.returncode == 2 and "did you mean 'epochs'" in result.stderr


def test_bad_flag_is_usage_error() -> None:
    result = kmat("train", "--no-such-flag")
    assert result.returncode == 2 and "No such option" in result.stderr


def test_debug_shows_traceback() -> None:
    result = kmat("train", "--task", "chst", env={"KMAT_DEBUG": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_env_json_and_version() -> None:
    result = kmat("env", "--json")
    info = json.loads(result.stdout)
    assert info["python"] == sys.version.split()[0] and "torch" in info["packages"]
    assert kmat("--version").stdout.startswith("kmat ")


def test_every_command_has_help_with_an_example() -> None:
    from kmat_cli.commands import load_commands

    for name, _ in load_commands():
        result = kmat(name, "--help")
        assert result.returncode == 0 and "Example:" in result.stdout, name


def test_every_command_module_is_registered() -> None:
    """Each module of kmat_cli/commands (but the shared-options module) is a registered subcommand."""
    from kmat_cli.commands import COMMANDS

    modules = {p.stem for p in (REPO / "kmat_cli" / "commands").glob("*.py") if not p.stem.startswith("_")}
    assert {module.__name__.rsplit(".", 1)[1] for _, module in COMMANDS} == modules


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--backbone", "nosuch"], "unknown backbone 'nosuch'"),
        (["--device", "bogus"], "config key 'train.device' must be auto, cpu, cuda, cuda:N or mps"),
        (["--seeds", "1,x"], "--seeds '1,x': expected integers like 1,2,3"),
    ],
)
def test_tune_takes_the_shared_training_options(
    tmp_path: Path, option: list[str], expected: str, capsys: pytest.CaptureFixture
) -> None:
    """`kmat tune` reads --backbone, --device and --seeds as train and benchmark do: into the config that
    every trial is checked against before any runs (so a bad value is one line, exit 2, nothing written).
    In this process (app.main), as the console script calls it, to stay fast."""
    from kmat_cli import app

    out = tmp_path / "tune"
    code = app.main(["tune", "--task", "phantom", "--out", str(out), *option])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"kmat: error: {expected}"), err
    assert not out.exists()


def test_example_plugin_package_is_discovered(tmp_path: Path) -> None:
    """Build and install examples/plugin-package into a folder, then `kmat list` finds its plugins."""
    source = tmp_path / "src"
    shutil.copytree(REPO / "examples" / "plugin-package", source)
    target = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    env = {"PYTHONPATH": str(target)}
    listed = kmat("list", "transports", env=env)
    assert listed.returncode == 0
    assert "paired-l2" in listed.stdout and "kmat-example-plugins" in listed.stdout
    assert "Class-matched squared distance" in listed.stdout
    tasks = kmat("list", "tasks", env=env)
    assert "folder-pair" in tasks.stdout
    script = (
        "import torch; from kmat_cli.registry import get; T = get('transports', 'paired-l2')();"
        "h = torch.randn(3, 4); l = torch.randn(3, 4, requires_grad=True); T(h, l).backward();"
        "print(float(T(h, l)), float(((h - l) ** 2).sum(1).mean()), float(T.plan(h, l).sum()))"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, **env}, timeout=300
    )
    loss, expected, mass = map(float, run.stdout.split())
    assert loss == pytest.approx(expected) and mass == pytest.approx(1.0)


# ------------------------------------------------------------------------------------ 13. smaller
def test_help_reads_at_80_columns_and_flags_take_no_value() -> None:
    env = {"COLUMNS": "80", "PATH": str(Path(sys.executable).parent)}
    script = "from kmat_cli.app import main; main(['predict', '--help'])"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    text = result.stdout
    assert "on Ctrl-C, 143 on SIGTERM" in " ".join(text.split())  # one paragraph, rewrapped as a whole
    assert "143 on \n" not in text and "143 on\n" not in text
    assert "<bool>" not in text and "--progress" in text


def test_click_errors_are_one_line_and_wrong_names_point_the_way(capsys) -> None:
    for args, needle in (
        (["train", "--bogus"], "No such option: --bogus"),
        (["train", "--epochs", "x"], "'--epochs'"),
        (["nosuch"], "No such command 'nosuch'"),
        (["train", "-m", "coop,kmat"], "kmat benchmark --methods coop,kmat"),
        (["train", "--set", "lambda1=2"], "did you mean 'method.lambda1'?"),
        (["train", "--set", "lr=0.1"], "did you mean 'train.lr'?"),
    ):
        code, stdout, stderr = cli(*args)
        assert code == 2 and stdout == "" and needle in stderr, (args, stderr)
        assert stderr.startswith("kmat: error: ") and stderr.count("\n") == 1, stderr
