"""A run folder's saved ``config.yaml`` is validated exactly like a new config, by every command that reads
it (``kmat evaluate``, ``kmat export``, ``kmat train --resume``): a damaged one (empty, a section or key
missing, a value out of range, an unknown option) is one ``kmat: error:`` line naming the file and the key,
exit code 2, and the run folder is left as it was.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from faults import assert_error, cli, custom_task, run_folders, train_args

from kmat_cli import config
from kmat_cli.errors import UsageError
from kmat_cli.runs import Run

pytestmark = pytest.mark.usefixtures("no_progress")


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("saved")
    out = folder / "runs"
    result = cli(*train_args(custom_task(folder / "task"), out))
    assert result.code == 0, result.err
    [run] = run_folders(out)
    return run


def _drop(section: str, key: str | None = None) -> Callable[[dict[str, Any]], None]:
    def damage(cfg: dict[str, Any]) -> None:
        if key is None:
            del cfg[section]
        else:
            del cfg[section][key]

    return damage


def _put(section: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def damage(cfg: dict[str, Any]) -> None:
        cfg[section][key] = value

    return damage


DAMAGES: dict[str, tuple[Callable[[dict[str, Any]], None] | None, str]] = {
    "empty": (None, "'task' is missing"),
    "no-train-section": (_drop("train"), "'train' is missing"),
    "no-lr": (_drop("train", "lr"), "'train.lr' is missing"),
    "no-method-option": (_drop("method", "lambda1"), "'method.lambda1' is missing"),
    "eval-batch-zero": (_put("train", "eval_batch_size", 0), "train.eval_batch_size"),
    "unknown-option": (_put("train", "learning_rate", 0.1), "train.learning_rate"),
    "unknown-method-option": (_put("method", "lambda9", 1.0), "method.lambda9"),
    "wrong-type": (_put("train", "epochs", "many"), "train.epochs"),
}


@pytest.mark.parametrize("command", ["evaluate", "export", "resume"])
@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_damaged_saved_config_is_one_line_naming_file_and_key(
    tmp_path: Path, finished: Path, damage: str, command: str
) -> None:
    run = tmp_path / finished.name
    shutil.copytree(finished, run)
    change, needle = DAMAGES[damage]
    saved = run / Run.CONFIG
    if change is None:
        saved.write_text("", encoding="utf-8")
    else:
        cfg = yaml.safe_load(saved.read_text(encoding="utf-8"))
        change(cfg)
        saved.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    args = ["train", "--resume", run] if command == "resume" else [command, run]
    assert_error(cli(*args), str(saved), needle)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_a_sound_saved_config_loads_as_saved(finished: Path) -> None:
    saved = yaml.safe_load((finished / Run.CONFIG).read_text(encoding="utf-8"))
    assert config.load_saved(finished / Run.CONFIG) == saved


def test_a_run_saved_before_later_keys_existed_still_loads(tmp_path: Path) -> None:
    """A run folder of an earlier kmat lacks the keys added since (``config.LATER_KEYS``); it loads with
    the values it was computed with (no warm start, no agreement rule), while any other missing key stays
    refused."""
    cfg = config.resolve([{"task": {"name": "phantom"}, "method": {"name": "kmat"}}])
    assert cfg["method"]["agreement"] is True and cfg["transport"]["warm_start"] is True  # today's defaults
    older = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg.items() if k != "knowledge"}
    for section, key in (("transport", "warm_start"), ("method", "agreement"), ("method", "agreement_tau")):
        older[section].pop(key)
    file = tmp_path / "config.yaml"
    file.write_text(config.dump(older), encoding="utf-8")
    loaded = config.load_saved(file)
    assert loaded["method"]["agreement"] is False and loaded["transport"]["warm_start"] is False
    assert loaded["method"]["agreement_tau"] == cfg["method"]["agreement_tau"]
    loaded["method"]["agreement"] = loaded["transport"]["warm_start"] = True
    assert loaded == cfg
    saved_today = tmp_path / "today.yaml"
    saved_today.write_text(config.dump(cfg), encoding="utf-8")
    assert config.load_saved(saved_today) == cfg  # a key that is present is never replaced
    del older["method"]["lambda1"]
    file.write_text(config.dump(older), encoding="utf-8")
    with pytest.raises(UsageError, match=r"'method\.lambda1' is missing"):
        config.load_saved(file)
