"""`kmat tune`: grid parsing, validation before running, the high-end-validation-only protocol, outputs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml
from kmat_runner import cli

from kmat_cli import app, config, registry
from kmat_cli.errors import UsageError
from kmat_cli.experiments import tune
from kmat_cli.experiments.flags import common_flags


# ---------------------------------------------------------------------------------------------- parsing
def test_parse_grid_reads_yaml_values_in_order() -> None:
    grid = tune.parse_grid(
        ["method.lambda1=0.1, 1,1e-3", "method.csc=[true, false]", "transport.cost=cosine"]
    )
    assert list(grid) == ["method.lambda1", "method.csc", "transport.cost"]
    assert grid["method.lambda1"] == [0.1, 1, 0.001]
    assert grid["method.csc"] == [True, False]
    assert grid["transport.cost"] == ["cosine"]
    points = tune.grid_points({"a": [1, 2], "b": ["x", "y", "z"]})
    assert points[:4] == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"}, {"a": 2, "b": "x"}]
    assert len(points) == 6
    assert tune.set_items({"method.lambda1": 0.5, "method.csc": False}) == (
        "method.lambda1=0.5",
        "method.csc=false",
    )


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("method.lambda1", "expected key=v1,v2"),
        ("method.lambda1=", "empty value"),
        ("method.lambda1=1,,2", "empty value"),
        ("train.seed=1,2", "use --seeds"),
        ("method.lambda1=[]", "non-empty YAML list"),
    ],
)
def test_parse_grid_rejects_malformed_items(item: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        tune.parse_grid([item])
    with pytest.raises(UsageError, match="given twice"):
        tune.parse_grid(["method.lambda1=1", "method.lambda1=2"])


def test_default_grid_is_small_and_includes_the_paper_default() -> None:
    points = tune.grid_points(tune.DEFAULT_GRID)
    assert len(points) <= 25
    assert {"method.lambda1": 1.0, "method.lambda2": 1.0} in points


def test_best_trial_is_the_first_of_the_highest_mean() -> None:
    trials = [tune.Trial(i + 1, {"x": i}, {1: s, 2: s}) for i, s in enumerate([0.5, 0.7, 0.7, 0.6])]
    trials.append(tune.Trial(5, {"x": 9}, {1: 0.9, 2: None}, ["boom"]))  # incomplete: never chosen
    assert tune.best_trial(trials).index == 2
    with pytest.raises(Exception, match="boom"):
        tune.best_trial([trials[-1]])


def test_a_config_file_travels_as_flags_under_the_command_flags(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("train: {shots: 4, lr: 0.01}\ntransport: {name: gw, epsilon: 0.2}\nmethod: {n_ctx: 2}\n")
    flags = common_flags(base, {"train.shots": 2, "transport.name": "fgw", "method.name": None})
    assert flags == {"train.shots": 2, "train.lr": 0.01, "method.n_ctx": 2, "transport.name": "fgw"}
    assert config.build(flags=flags)["train"]["lr"] == 0.01


def test_best_config_keeps_what_the_user_fixed_and_loads_as_a_config(tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text("method: {n_ctx: 2}\ntrain: {seed: 7, lr: 0.01}\nout: elsewhere\n")
    flags = common_flags(base, {"train.lr": 0.02})
    fixed = tune.fixed_keys(flags, ["transport.alpha=0.5"])
    assert fixed == {"method.n_ctx": 2, "train.lr": 0.02, "transport.alpha": 0.5}  # no seed, no out
    resolved = config.build(flags={k: v for k, v in flags.items() if k != "out"})
    best = tune.best_config(resolved, fixed, {"method.lambda1": 0.5})
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump(best))
    cfg = config.build(config_file=path)
    assert (cfg["method"]["n_ctx"], cfg["method"]["lambda1"], cfg["transport"]["alpha"]) == (2, 0.5, 0.5)
    assert cfg["train"]["lr"] == 0.02 and cfg["train"]["seed"] == 1


# ------------------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--grid", "method.lambd1=0.1,1"], "method.lambd1"),
        (["--grid", "method.lambda1=0.1,cheese"], "method.lambda1"),
        (["--grid", "train.nope=1"], "train.nope"),
        (["--set", "method.bogus=1"], "method.bogus"),
        (["--method", "coop"], "method.lambda1"),
        (["--metric", "auc"], "auc"),
    ],
)
def test_bad_keys_exit_2_naming_them_before_anything_runs(
    args: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = cli("tune", "--task", "phantom", "--out", str(tmp_path / "t"), *args)
    assert code == 2
    assert named in err and err.count("\n") == 1
    assert not (tmp_path / "t").exists()


# ----------------------------------------------------------------------------------- a real small tune
@pytest.fixture(scope="module")
def hi_only_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom world root holding only the high-end images: the low-end files do not exist at all."""
    task = registry.get("tasks", "phantom")()
    assert task.manifest  # generates the shared world if needed
    shared = task.folder
    root = tmp_path_factory.mktemp("world")
    (root / shared.name).mkdir()
    shutil.copy(shared / "manifest.json", root / shared.name / "manifest.json")
    shutil.copytree(shared / "hi", root / shared.name / "hi")
    return root


@pytest.fixture(scope="module")
def tuned(hi_only_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[tune.TuneResult, list]:
    """A 2 x 2 grid over two seeds (1 epoch, 2 shots), in process, recording every split a task reads."""
    Phantom = registry.get("tasks", "phantom")
    asked: list[tuple[str, str]] = []
    real = Phantom.split
    Phantom.split = lambda self, modality, split: (
        asked.append((modality, split)),
        real(self, modality, split),
    )[1]
    try:
        result = tune.tune(
            flags={"task.name": "phantom", "method.name": "kmat", "train.shots": 2, "train.epochs": 1},
            grid={"method.lambda1": [0.1, 3.0], "method.lambda2": [0.1, 3.0]},
            seeds=[1, 2],
            sets=["train.threads=1", f"task.root={hi_only_world}"],
            out=tmp_path_factory.mktemp("tune") / "out",
            progress=False,
        )
    finally:
        Phantom.split = real
    return result, asked


def test_tune_never_reads_the_low_end(tuned: tuple[tune.TuneResult, list]) -> None:
    result, asked = tuned
    assert all(t.complete for t in result.trials), [t.errors for t in result.trials]
    assert asked and {m for m, _ in asked} == {"hi"}
    assert {s for _, s in asked} <= {"train", "val"}


def test_best_yaml_is_a_train_config_with_the_best_values(tuned: tuple[tune.TuneResult, list]) -> None:
    result, _ = tuned
    raw = yaml.safe_load(result.best_path.read_text(encoding="utf-8"))
    assert raw["task"]["name"] == "phantom" and raw["method"]["name"] == "kmat"
    assert raw["transport"] == {"name": "fgw"}
    cfg = config.build(config_file=result.best_path)
    for key, value in result.best.values.items():
        assert config.get_dotted(cfg, key) == value
    assert cfg["train"]["threads"] == 1 and "seed" not in raw.get("train", {})


def test_the_best_is_the_argmax_of_the_csv_means(tuned: tuple[tune.TuneResult, list]) -> None:
    result, _ = tuned
    with result.csv_path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    means = [(float(r["accuracy_seed1"]) + float(r["accuracy_seed2"])) / 2 for r in rows]
    for r, m in zip(rows, means, strict=True):
        assert float(r["mean_accuracy"]) == pytest.approx(m)
        assert 0 <= m <= 1
    best = rows[max(range(4), key=lambda i: (means[i], -i))]
    assert int(best["trial"]) == result.best.index
    assert {k: json.loads(best[k]) for k in result.keys} == result.best.values
    scores = {(t.index, s): v for t in result.trials for s, v in t.scores.items()}
    outcomes = sorted(result.csv_path.parent.glob("cells/*/result.json"))
    assert len(outcomes) == 8 and len(scores) == 8


def test_a_rerun_reads_the_finished_trials_back(
    tuned: tuple[tune.TuneResult, list], hi_only_world: Path, capsys: pytest.CaptureFixture
) -> None:
    result, _ = tuned
    out = result.csv_path.parent
    before = sorted(p.stat().st_mtime_ns for p in out.glob("cells/*/result.json"))
    code, stdout, _ = cli("tune",
            "--grid", "method.lambda1=0.1,3",
            "--grid", "method.lambda2=0.1,3",
            "--seeds", "1,2",
            "--shots", "2",
            "--epochs", "1",
            "--set", "train.threads=1",
            "--set", f"task.root={hi_only_world}",
            "--out", str(out),
            "--output", str(out / "copy.yaml"))  # fmt: skip
    assert code == 0
    assert sorted(p.stat().st_mtime_ns for p in out.glob("cells/*/result.json")) == before
    assert "best:" in stdout and f"kmat train --config {out / 'best.yaml'}" in stdout
    assert (out / "copy.yaml").read_text() == result.best_path.read_text()


def test_following_best_yaml_trains_the_tuned_setting(
    tuned: tuple[tune.TuneResult, list], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The trials ran 1 epoch on 2 shots: best.yaml says so, and `kmat train --config best.yaml --seed 1`
    scores on the high-end validation split what the best trial's seed-1 cell scored."""
    from kmat_cli import workflow

    result, _ = tuned
    raw = yaml.safe_load(result.best_path.read_text(encoding="utf-8"))
    assert raw["train"]["epochs"] == 1 and raw["train"]["shots"] == 2
    tune.render(result)
    printed = capsys.readouterr().out
    assert f"train with: kmat train --config {result.best_path}\n" in printed  # the file is the command
    args = [
        "train",
        "--config",
        str(result.best_path),
        "--seed",
        "1",
        "--no-evaluate",
        "--out",
        str(tmp_path),
    ]
    assert app.main(args) == 0
    run = next((tmp_path / "train").iterdir())
    score = workflow.validate(run, progress=False)["hi"][result.metric]
    assert score == result.best.scores[1]


@pytest.mark.usefixtures("no_progress")
def test_tune_summary_shows_grid_values_and_paths_literally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], wide: None
) -> None:
    from kmat_cli.experiments.tune import Trial, TuneResult, render

    best = Trial(0, {"method.transport": "[/]", "train.lr": 0.01}, {1: 0.5})
    other = Trial(1, {"method.transport": "fgw [bold]", "train.lr": 0.1}, {1: 0.25})
    folder = tmp_path / "t[/x]"
    result = TuneResult(
        "accuracy",
        ["method.transport", "train.lr"],
        [1],
        [best, other],
        best,
        {},
        folder / "tune.csv",
        folder / "best.yaml",
    )
    render(result)
    out = capsys.readouterr().out
    assert "fgw [bold]" in out and "best: method.transport=[/] train.lr=0.01" in out
    assert f"train with: kmat train --config {folder / 'best.yaml'}" in out
