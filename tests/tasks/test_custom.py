"""Custom tasks from YAML: --task path/to/task.yaml, the worked example in examples/custom-task, runs named
after the task's own name."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import task_fakes as fakes
from kmat_runner import cli
from repo_paths import REPO
from short_runs import SHORT_FLAGS
from task_cli import run_kmat

from kmat_cli import config, registry
from kmat_cli.api import MODALITIES, SPLITS, UsageError

EXAMPLE = REPO / "examples" / "custom-task"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of examples/custom-task with its demo images drawn (2 per class and split share)."""
    folder = tmp_path / "custom-task"
    folder.mkdir()
    for name in ("task.yaml", "descriptions.json"):
        shutil.copy(EXAMPLE / name, folder / name)
    spec = importlib.util.spec_from_file_location("make_demo_data", EXAMPLE / "make_demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make(folder, per_class=2, seed=0)
    return folder / "task.yaml"


def _plugin_lookup(kind: str, name: str):
    if kind == "tasks":
        return registry.get(kind, name)

    class Plain:  # stands in for the other plugins, which these tests do not exercise
        def __init__(self) -> None:
            pass

    return Plain


def test_task_name_that_is_a_yaml_file_resolves_to_a_bound_task(example: Path) -> None:
    cls = registry.get("tasks", str(example))
    assert cls.name == "demo-lesions"
    assert cls.config == {"train": {"shots": 4}, "backbone": {"name": "biomedclip"}}
    task = cls()
    assert task.class_names == ["smooth nodule", "spiculated mass", "cystic lesion"]
    assert task.modalities == {"hi": "colour close-up photograph", "lo": "grey low-contrast scan"}
    assert task.descriptions["lo"]["cystic lesion"][0] == "a faint grey ring with a dark middle"
    for modality in MODALITIES:
        counts = {s: len(task.split(modality, s)) for s in SPLITS}
        assert counts == {"train": 6, "val": 3, "test": 3}  # 2 per class, 1 per class in val and test
        for sample in task.split(modality, "train"):
            assert sample.path.is_file() and 0 <= sample.label < 3
    labels = sorted(s.label for s in task.split("hi", "train"))
    assert labels == [0, 0, 1, 1, 2, 2]


def test_config_build_reads_the_yaml_config_layer_and_binds_the_path(example: Path) -> None:
    cfg = config.build(flags={"task.name": str(example)}, plugin_lookup=_plugin_lookup)
    assert cfg["task"] == {"name": str(example), "path": str(example.resolve())}
    assert cfg["train"]["shots"] == 4  # the task YAML's config section, below flags
    cfg = config.build(flags={"task.name": str(example), "train.shots": 2}, plugin_lookup=_plugin_lookup)
    assert cfg["train"]["shots"] == 2


def test_cli_checks_a_yaml_task(example: Path) -> None:
    result = cli("data", "check", str(example))
    assert result.code == 0, result.output
    assert "demo-lesions: all splits load" in result.output


def test_descriptions_default_to_templates_and_json_data(tmp_path: Path) -> None:
    fakes.image(tmp_path / "img" / "x.png")
    split = {"train": [["img/x.png", 1, "b"]], "val": [], "test": [["img/x.png", 0]]}
    (tmp_path / "splits.json").write_text(json.dumps({"hi": split, "lo": split}))
    (tmp_path / "t.yml").write_text(
        "class_names: [a, b]\nmodalities: {hi: CT, lo: X-ray}\ndata: splits.json\n"
    )
    task = registry.get("tasks", str(tmp_path / "t.yml"))()
    assert task.name == "t" and task.descriptions["lo"]["b"] == ["a X-ray image of b."]
    assert [s.label for s in task.split("lo", "train")] == [1] and task.split("hi", "val") == []


@pytest.mark.parametrize(
    ("yaml_text", "csv_text", "message"),
    [
        ("clas_names: [a, b]\n", "", "unknown key 'clas_names' (did you mean 'class_names'?)"),
        ("class_names: [a]\nmodalities: {hi: x, lo: y}\ndata: {hi: d, lo: d}\n", "", "at least two"),
        ("class_names: [a, b]\nmodalities: {hi: x}\ndata: {hi: d, lo: d}\n", "", "'modalities'"),
        (None, "path,label,split\n../secret.png,a,train\n", "escapes the data root"),
        (None, "path,label,split\n/etc/hosts,a,train\n", "must be relative"),
        (None, "path,label,split\nimg/x.png,c,train\n", "label 'c' is not a class"),
        (None, "path,label,split\nimg/x.png,a,later\n", "split 'later'"),
    ],
)
def test_bad_task_files_are_one_line_usage_errors(
    tmp_path: Path, yaml_text, csv_text: str, message: str
) -> None:
    fakes.image(tmp_path / "img" / "x.png")
    (tmp_path / "lo.csv").write_text(csv_text or "path,label,split\nimg/x.png,a,train\n")
    text = yaml_text or "class_names: [a, b]\nmodalities: {hi: x, lo: y}\ndata: {hi: lo.csv, lo: lo.csv}\n"
    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(UsageError) as info:
        task = registry.get("tasks", str(tmp_path / "t.yaml"))()
        task.split("lo", "train")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_task_file_exits_2(tmp_path: Path) -> None:
    result = run_kmat("data", "check", str(tmp_path / "nope.yaml"))
    assert (
        result.returncode == 2
        and result.stderr.strip() == f"kmat: error: {tmp_path / 'nope.yaml'}: task file not found"
    )


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
