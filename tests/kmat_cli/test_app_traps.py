"""User experience from a fresh clone, round 3: each test runs a trap a new user met through the real
``kmat`` entry point (in-process ``kmat_cli.app.main``, or a subprocess) and checks what the user now sees."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kmat_runner import cli, interrupted_run
from repo_paths import REPO

from kmat_cli import train

SHORT_FLAGS = ["--epochs", "1", "--shots", "2", "--threads", "1"]


def _copy_run(run: Path, dest: Path, *, status: str = "finished", time: float = 1.0) -> Path:
    """A copy of a finished run folder with its ``run.json`` saying ``status`` at ``time``."""
    shutil.copytree(run, dest)
    (dest / "run.json").write_text(json.dumps({"status": status, "time": time}), encoding="utf-8")
    return dest


def _rows(stdout: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(stdout)))


def _interrupted(
    out: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> tuple[Path, str]:
    """A run of 2 epochs stopped by Ctrl-C right after its epoch-1 checkpoint; (run folder, stderr)."""
    run, result = interrupted_run(out, monkeypatch, "--epochs", "2", "--shots", "2", "--threads", "1")
    return run, result.err


# ------------------------------------------------------------------ 0. kmat predict with no --run/--embeddings
def test_predict_without_prompts_uses_the_run_that_finished_last_then_the_local_prompts_file(
    phantom_run: Path, phantom_prompts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    images = phantom_prompts.parent / "images"
    code, _, stderr = cli("predict", images)
    assert code == 2 and stderr.count("\n") == 1
    assert "no finished run under runs/train" in stderr and "kmat train --task phantom" in stderr

    shutil.copy(phantom_prompts, tmp_path / "prompts.safetensors")
    code, stdout, stderr = cli("predict", images)
    assert code == 0 and "using ./prompts.safetensors" in stderr and len(_rows(stdout)) == 12

    older = _copy_run(phantom_run, tmp_path / "runs/train/phantom-coop-s3-1", time=100.0)
    newer = _copy_run(phantom_run, tmp_path / "runs/train/phantom-coop-s3-2", time=200.0)
    _copy_run(phantom_run, tmp_path / "runs/train/phantom-coop-s3-3", status="interrupted", time=300.0)
    code, stdout, stderr = cli("predict", images)
    assert (
        code == 0 and f"using {Path('runs/train') / newer.name}," in stderr and str(older.name) not in stderr
    )
    _, explicit, _ = cli("predict", images, "--run", newer)
    assert stdout == explicit


# ------------------------------------------------------------------------------- 1. after make demo
def test_make_demo_says_how_to_call_kmat_next() -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on this machine")
    result = subprocess.run(
        [make, "-n", "demo", "STAMP=/dev/null"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "source .venv/bin/activate" in result.stdout and ".venv/bin/kmat" in result.stdout
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "source .venv/bin/activate" in readme


# ---------------------------------------------------------------- 5. unfinished runs steer to --resume
def test_an_unfinished_run_steers_to_resume_in_train_predict_export_and_evaluate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    run, stderr = _interrupted(tmp_path / "runs", monkeypatch, capsys)
    hint = f"kmat train --resume {run}"
    assert hint in stderr and "interrupted after epoch 1 of 2" in stderr  # Ctrl-C says how to go on
    images = tmp_path / "scans"
    assert cli("data", "sample", "--out", images)[0] == 0
    for args in (
        ["predict", images, "--run", run],
        ["predict", images, "--embeddings", run],
        ["export", run],
    ):
        code, stdout, stderr = cli(*args)
        assert code == 2 and stdout == "" and hint in stderr and "unfinished run" in stderr, args
    assert not (run / "prompts.safetensors").exists()  # nothing deployable was written
    code, _, stderr = cli("evaluate", run)  # a diagnosis: allowed, with a warning line
    assert code == 0 and "kmat: warning:" in stderr and hint in stderr
    code, stdout, _ = cli("train", "--resume", run)  # the hint works as written
    assert code == 0 and stdout == f"{run}\n"
    code, stdout, _ = cli("predict", images, "--run", run)
    assert code == 0 and len(_rows(stdout)) == 8


# ------------------------------------------------------------------ 6. a run folder as --embeddings
def test_a_run_folder_is_accepted_where_a_prompts_file_is_expected(
    phantom_run: Path, phantom_prompts: Path, tmp_path: Path, capsys
) -> None:
    import kmat

    images = phantom_prompts.parent / "images"
    code, by_folder, stderr = cli("predict", images, "--embeddings", phantom_run)
    _, by_run, _ = cli("predict", images, "--run", phantom_run)
    assert code == 0 and by_folder == by_run, stderr
    prompts = kmat.load_prompts(str(phantom_run))
    same = kmat.load_prompts(phantom_run / "prompts.safetensors")
    assert prompts.class_names == same.class_names
    assert all((prompts.embeddings[m] == same.embeddings[m]).all() for m in ("hi", "lo"))
    code, _, stderr = cli("predict", images, "--embeddings", tmp_path)
    assert code == 2 and "a folder, not a prompts file" in stderr


# --------------------------------------------------------------------------- 8. short options
def test_short_options_have_one_meaning_and_tune_o_writes_a_file(tmp_path: Path, capsys) -> None:
    from kmat_cli.app import cli as click_group

    root = click_group()
    for name, command in root.commands.items():
        subs = getattr(command, "commands", None) or {name: command}
        for sub in subs.values():
            for param in sub.params:
                opts = set(param.opts)
                if "-o" in opts:
                    assert "--output" in opts, (name, param.opts)
                if "-b" in opts:
                    assert "--backbone" in opts, (name, param.opts)
                if "--out" in opts:
                    assert "-o" not in opts, (name, param.opts)
    code, _, stderr = cli("tune", "--out", tmp_path / "best.yaml", "--epochs", "1")
    assert code == 2 and "--output" in stderr and not (tmp_path / "best.yaml").exists()
    code, _, stderr = cli("predict", "scans", "-b", "phantom")
    assert code == 2 and "No such option: -b" in stderr


# --------------------------------------------------------------------- 9. benchmark folders
def test_a_benchmark_folder_is_never_taken_over_by_another_grid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    grid = ["benchmark", "--task", "phantom", "--methods", "zeroshot", "--seeds", "1", "--no-plots"]
    assert cli(*grid, *SHORT_FLAGS[:4])[0] == 0
    first = tmp_path / "runs/benchmark/phantom"
    report = (first / "report.md").read_bytes()
    code, _, stderr = cli(*grid, "--shots", "4", "--epochs", "1", "--out", first)
    assert code == 2 and "holds another benchmark" in stderr and (first / "report.md").read_bytes() == report
    code, stdout, stderr = cli(*grid, "--shots", "4", "--epochs", "1")
    second = Path("runs/benchmark/phantom-2")
    assert code == 0 and f"writing to {second}" in stderr and f"report: {second / 'report.md'}" in stdout
    assert (first / "report.md").read_bytes() == report
    code, stdout, _ = cli(*grid, *SHORT_FLAGS[:4])  # the first grid again: resumed in place
    assert code == 0 and f"report: {Path('runs/benchmark/phantom/report.md')}" in stdout


# ------------------------------------------------------------------------ 10. a task file's name
def test_a_custom_task_run_is_named_after_the_task_files_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    example = tmp_path / "custom-task"
    shutil.copytree(REPO / "examples/custom-task", example)
    subprocess.run(
        [sys.executable, example / "make_demo_data.py"], check=True, capture_output=True, timeout=300
    )
    out = tmp_path / "runs"
    args = ["train", "--task", example / "task.yaml", "--backbone", "phantom", "--out", out, *SHORT_FLAGS]
    code, stdout, stderr = cli(*args)
    assert code == 0, stderr
    assert stdout == f"{out / 'train' / 'demo-lesions-kmat-s1-1'}\n"
    assert "demo-lesions / kmat / seed 1" in stderr and "task.yaml / kmat" not in stderr


# ------------------------------------------------------------------------------ 12. short runs
def test_a_short_run_is_not_all_warm_up_and_zero_epochs_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs"
    code, stdout, _ = cli("train", "--epochs", "2", "--shots", "2", "--threads", "1", "--out", out)
    history = [json.loads(line) for line in (Path(stdout.strip()) / "metrics.jsonl").read_text().splitlines()]
    assert code == 0 and history[0]["lr"] == pytest.approx(0.0025)  # train.lr from the first epoch
    assert train.lr_at(0, lr=0.0025, epochs=50, warmup_epochs=1, warmup_lr=1e-5) == 1e-5  # the protocol's
    code, _, stderr = cli("train", "--epochs", "0", "--out", out)
    assert code == 2 and "at least 1 epoch" in stderr
    code, _, _ = cli("train", "-m", "zeroshot", "--epochs", "0", "--out", out)
    assert code == 0  # zero-shot trains nothing


@pytest.mark.slow
def test_the_readme_quick_example_beats_zero_shot_on_the_low_end(tmp_path: Path, capsys) -> None:
    out = tmp_path / "runs"
    _, quick, _ = cli("train", "--epochs", "5", "--json", "--out", out)
    _, zero, _ = cli("train", "-m", "zeroshot", "--json", "--out", out)
    assert json.loads(quick)["metrics"]["lo"]["accuracy"] > json.loads(zero)["metrics"]["lo"]["accuracy"]
    assert "kmat train --task phantom --epochs 5" in (REPO / "README.md").read_text(encoding="utf-8")


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


def test_the_label_free_check_is_in_checks_json_and_on_stderr_only_with_verbose(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "runs"
    code, stdout, stderr = cli("train", "--out", out, *SHORT_FLAGS)
    assert code == 0 and "label-free" not in stderr
    assert "init" in json.loads((Path(stdout.strip()) / "checks.json").read_text())
    code, _, stderr = cli("train", "--out", out, "--verbose", *SHORT_FLAGS)
    assert code == 0 and "label-free check at init" in stderr


def test_the_demo_table_says_its_cells_are_accuracy_and_macro_f1(tmp_path: Path, capsys) -> None:
    args = [
        "benchmark",
        "--task",
        "phantom",
        "--methods",
        "zeroshot",
        "--seeds",
        "1",
        "--no-plots",
        "--summary",
    ]
    code, stdout, _ = cli(*args, "--out", tmp_path / "b", *SHORT_FLAGS[:4])
    assert code == 0 and "accuracy % (macro-F1 %)" in stdout
