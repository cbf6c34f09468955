"""Bad input: every fault is a one-line ``kmat: error:`` naming the file or key, exit code 2, and no run
folder left behind (``kmat predict`` reports an unreadable image on its row instead)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from pathlib import Path

import pytest
from faults import (
    assert_error,
    assert_no_finished_runs,
    cli,
    custom_task,
    png,
    prompts_file,
    run_folders,
    train_args,
)

from kmat_cli import runs

pytestmark = pytest.mark.usefixtures("no_progress")

CLASSES = ["smooth nodule", "spiculated mass"]

MALFORMED_YAML = {
    "unclosed-flow": b"train: {epochs: 3\n",
    "bad-indent": b"train:\n  epochs: 3\n shots: 2\n",
    "tab-indent": b"train:\n\tepochs: 3\n",
    "nested-colon": b"a: b: c\n",
    "unclosed-list": b"key: [1, 2\n",
    "unterminated-string": b'name: "open\n',
    "not-utf8": b"\xff\xfe\x00t\x00r\x00a\x00i\x00n",
    "top-level-list": b"- train\n- epochs\n",
    "top-level-scalar": b"just words\n",
    "python-tag": b"train: !!python/object/apply:os.system ['echo pwned']\n",
}


def _no_runs(out: Path) -> None:
    assert not run_folders(out), f"a failed command left run folders: {run_folders(out)}"


# ------------------------------------------------------------------------------------------- malformed YAML
@pytest.mark.parametrize("where", ["config", "task", "run"])
@pytest.mark.parametrize("kind", sorted(MALFORMED_YAML))
def test_malformed_yaml_is_one_line_naming_the_file(tmp_path: Path, where: str, kind: str) -> None:
    """The same ten broken YAML texts as a --config file, as a custom task file and as a run's config.yaml."""
    out = tmp_path / "runs"
    if where == "config":
        path = tmp_path / "bad.yaml"
        path.write_bytes(MALFORMED_YAML[kind])
        result = cli("train", "--config", path, "--out", out, "--no-evaluate")
    elif where == "task":
        path = tmp_path / "task.yaml"
        path.write_bytes(MALFORMED_YAML[kind])
        result = cli("train", "--task", path, "--out", out, "--no-evaluate")
    else:
        run = runs.create(out, "train", "phantom", "kmat")
        path = run.file("config.yaml")
        path.write_bytes(MALFORMED_YAML[kind])
        result = cli("train", "--resume", run.path, "--no-evaluate")
        assert_error(result, path)
        assert runs.open_run(run.path).status == "created"
        result = cli("evaluate", run.path)
    assert_error(result, path)
    if where != "run":
        _no_runs(out)


# ----------------------------------------------------------------------------------------- wrong-typed YAML
WRONG_TYPED_CONFIG = [
    ("train: {epochs: ten}", "train.epochs"),
    ("train: {lr: [0.1]}", "train.lr"),
    ("train: {amp: 'yes'}", "train.amp"),
    ("train: 5", "'train'"),
    ("train: {shots: 2.5}", "train.shots"),
    ("train: {seed: null}", "train.seed"),
    ("train: {lr: .nan}", "train.lr"),
    ("train: {warmup_lr: -.inf}", "train.warmup_lr"),
    ("train: {epochs: -3}", "train.epochs"),
    ("train: {batch_size: 0}", "train.batch_size"),
    ("train: {lr: -0.1}", "train.lr"),
    ("train: {optimizer: adamw}", "train.optimizer"),
    ("train: {scheduler: step}", "train.scheduler"),
    ("train: {device: 7}", "train.device"),
    ("method: [kmat]", "'method'"),
    ("method: {name: kmat, lambda1: big}", "method.lambda1"),
    ("method: {name: kmat, lambda1: null}", "method.lambda1"),
    ("transport: {name: fgw, epsilon: true}", "transport.epsilon"),
    ("transport: {name: 3}", "transport.name"),
    ("descriptions: 5", "'descriptions'"),
    ("out: [runs]", "'out'"),
]


@pytest.mark.parametrize(("text", "key"), WRONG_TYPED_CONFIG)
def test_wrong_typed_config_values_name_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, key: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no --out flag: it would replace the file's own `out`
    (tmp_path / "c.yaml").write_text(text + "\n", encoding="utf-8")
    result = cli("train", "--config", tmp_path / "c.yaml", "--no-evaluate")
    assert_error(result, key)
    _no_runs(tmp_path / "runs")


WRONG_TYPED_TASK = [
    ({"class_names": "smooth nodule, spiculated mass"}, "'class_names'"),
    ({"class_names": ["only one"]}, "'class_names'"),
    ({"class_names": ["a", 3]}, "'class_names'"),
    ({"class_names": ["a", "a"]}, "duplicates"),
    ({"modalities": ["hi", "lo"]}, "'modalities'"),
    ({"modalities": {"hi": "CT"}}, "'modalities'"),
    ({"name": "has space"}, "'name'"),
    ({"data": 3}, "'data'"),
    ({"data": {"hi": 3, "lo": "lo"}}, "'data.hi'"),
    ({"data": {"hi": "hi"}}, "'data'"),
    ({"config": [1, 2]}, "'config'"),
    ({"config": {"train": {"epochs": "many"}}}, "train.epochs"),
]


@pytest.mark.parametrize(("spec", "needle"), WRONG_TYPED_TASK)
def test_wrong_typed_task_file_names_the_key(tmp_path: Path, spec: dict, needle: str) -> None:
    task = custom_task(tmp_path / "task", per_split={"train": 2}, **spec)
    result = cli("train", "--task", task, "--out", tmp_path / "runs", "--no-evaluate")
    line = assert_error(result, needle)
    if needle != "train.epochs":  # the task's config layer is checked with the run config, by key
        assert str(task) in line
    _no_runs(tmp_path / "runs")


# ----------------------------------------------------------------------------------------- unknown-key YAML
UNKNOWN_CONFIG_KEYS = [
    ("trian: {epochs: 2}", "'trian' (did you mean 'train'?)"),
    ("train: {epoch: 2}", "'train.epoch' (did you mean 'epochs'?)"),
    ("method: {name: kmat, lamda1: 2}", "'method.lamda1'"),
    ("transport: {name: fgw, eps: 0.1}", "'transport.eps'"),
    ("backbone: {name: phantom, weight: x}", "'backbone.weight'"),
    ("task: {name: phantom, sed: 1}", "'task.sed'"),
]


@pytest.mark.parametrize(("text", "needle"), UNKNOWN_CONFIG_KEYS)
def test_unknown_config_keys_are_refused_with_a_suggestion(tmp_path: Path, text: str, needle: str) -> None:
    (tmp_path / "c.yaml").write_text(text + "\n", encoding="utf-8")
    result = cli("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "runs", "--no-evaluate")
    assert_error(result, needle)
    _no_runs(tmp_path / "runs")


@pytest.mark.parametrize(
    ("sets", "needle"), [("train.epoc=3", "'train.epoc'"), ("mehtod.name=coop", "'mehtod'")]
)
def test_unknown_set_keys_are_refused(tmp_path: Path, sets: str, needle: str) -> None:
    result = cli("train", "--set", sets, "--out", tmp_path / "runs", "--no-evaluate")
    assert_error(result, needle)


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("clas_names", "'clas_names' (did you mean 'class_names'?)"),
        ("modality", "'modality'"),
        ("dat", "'dat'"),
    ],
)
def test_unknown_task_file_keys_are_refused(tmp_path: Path, key: str, needle: str) -> None:
    task = custom_task(tmp_path / "task", per_split={"train": 2}, **{key: "x"})
    result = cli("train", "--task", task, "--out", tmp_path / "runs", "--no-evaluate")
    assert_error(result, task, needle)
    _no_runs(tmp_path / "runs")


# ------------------------------------------------------------------------------------------ unknown plugins
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--task", "chestt"], "unknown task 'chestt' (did you mean 'chest'?)"),
        (["train", "--method", "kmatt"], "unknown method 'kmatt' (did you mean 'kmat'?)"),
        (["train", "--transport", "sinkhorn"], "unknown transport 'sinkhorn'"),
        (["train", "--backbone", "resnet"], "unknown backbone 'resnet'"),
        (["train", "--task", "no_such_module:Task"], "cannot import 'no_such_module'"),
        (["train", "--method", "kmat_cli.methods:NoSuch"], "has no attribute 'NoSuch'"),
        (["list", "gadgets"], "unknown plugin kind 'gadgets'"),
        (["data", "check", "nosuch"], "unknown task 'nosuch'"),
        (["describe", "--task", "nosuch", "--base-url", "http://127.0.0.1:9/v1"], "unknown task 'nosuch'"),
    ],
)
def test_unknown_plugin_names_list_the_known_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], needle: str
) -> None:
    if args[0] == "train":
        args = [*args, "--out", str(tmp_path / "runs"), "--no-evaluate"]
    monkeypatch.chdir(tmp_path)
    assert_error(cli(*args), needle)
    _no_runs(tmp_path / "runs")


def test_unknown_plugin_in_a_config_file_and_in_prompts_metadata(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("method: {name: nosuch}\n", encoding="utf-8")
    assert_error(cli("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "runs"), "'nosuch'")
    prompts = _prompts_file(tmp_path, {"kmat.backbone_config": json.dumps({"name": "nosuch"})})
    result = cli("predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--workers", "0")
    assert_error(result, "unknown backbone 'nosuch'")


# -------------------------------------------------------------------------------- class lists that differ
def _split_json_task(folder: Path, doc: dict) -> Path:
    png(folder / "img" / "a.png", 1)
    png(folder / "img" / "b.png", 2)
    (folder / "splits.json").parent.mkdir(parents=True, exist_ok=True)
    (folder / "splits.json").write_text(json.dumps(doc), encoding="utf-8")
    return custom_task(folder, data="splits.json")


GOOD_SPLIT = {"train": [["img/a.png", 0, "smooth nodule"], ["img/b.png", 1, "spiculated mass"]]}


@pytest.mark.parametrize(
    "case",
    ["folder-class", "json-class-names", "json-entry-name", "csv-label-name", "prepared-task"],
)
def test_class_list_of_the_data_differs_from_the_task(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "task"
    extra: list[str] = []
    if case == "folder-class":
        task = custom_task(folder, per_split={"train": 2})
        shutil.move(folder / "hi" / "train" / "spiculated mass", folder / "hi" / "train" / "ring lesion")
        needles = [folder / "hi" / "train" / "ring lesion", "not one of the classes"]
    elif case == "json-class-names":
        task = _split_json_task(
            folder, {"class_names": ["nevus", "melanoma"], "hi": GOOD_SPLIT, "lo": GOOD_SPLIT}
        )
        needles = [folder / "splits.json", "['nevus', 'melanoma']"]
    elif case == "json-entry-name":
        bad = {"train": [["img/a.png", 0, "spiculated mass"], ["img/b.png", 1, "smooth nodule"]]}
        task = _split_json_task(folder, {"hi": bad, "lo": GOOD_SPLIT})
        needles = [folder / "splits.json", "hi.train[0]", "does not match label 0"]
    elif case == "csv-label-name":
        png(folder / "img" / "a.png", 1)
        (folder / "hi.csv").write_text("path,label,split\nimg/a.png,melanoma,train\n", encoding="utf-8")
        task = custom_task(folder, data={"hi": "hi.csv", "lo": "hi.csv"})
        needles = [folder / "hi.csv", "row 2", "label 'melanoma'"]
    else:  # a built-in task over a data root prepared for another class list
        root = tmp_path / "chest-root"
        png(root / "a.png", 1)
        entries = {"train": [["a.png", 0, "x"]], "val": [], "test": []}
        doc = {"format": "kmat.splits/v1", "class_names": ["x", "y"], "hi": entries, "lo": entries}
        (root / "splits.json").write_text(json.dumps(doc), encoding="utf-8")
        task = "chest"
        extra = ["--set", f"task.root={root}"]
        needles = [root / "splits.json", "prepared for classes ['x', 'y']"]
    result = cli(*train_args(task, tmp_path / "runs", *extra))
    assert_error(result, *needles)
    _no_runs(tmp_path / "runs")


@pytest.mark.parametrize("how", ["flag", "task-file"])
def test_descriptions_written_for_another_class_list(tmp_path: Path, how: str) -> None:
    folder = tmp_path / "task"
    other = {"format": "kmat.descriptions/v1", "classes": {"nevus": {"hi": ["a"], "lo": ["b"]}}}
    (folder / "d.json").parent.mkdir(parents=True)
    (folder / "d.json").write_text(json.dumps(other), encoding="utf-8")
    if how == "flag":
        task = custom_task(folder, per_split={"train": 2})
        result = cli(*train_args(task, tmp_path / "runs", "--descriptions", folder / "d.json"))
    else:
        task = custom_task(folder, per_split={"train": 2}, descriptions="d.json")
        result = cli(*train_args(task, tmp_path / "runs"))
    assert_error(result, folder / "d.json", "no descriptions for class 'smooth nodule'")
    _no_runs(tmp_path / "runs")


# ------------------------------------------------------------------------------ labels outside the class list
@pytest.mark.parametrize("label", [2, 7, -1, "1", True, 1.5, None])
def test_json_labels_outside_the_class_list(tmp_path: Path, label: object) -> None:
    bad = {"train": [["img/a.png", 0], ["img/b.png", label]]}
    task = _split_json_task(tmp_path / "task", {"hi": bad, "lo": GOOD_SPLIT})
    result = cli(*train_args(task, tmp_path / "runs"))
    assert_error(result, tmp_path / "task" / "splits.json", "hi.train[1]", f"label {label!r}")
    _no_runs(tmp_path / "runs")


@pytest.mark.parametrize("label", ["2", "-1", "nevus", ""])
def test_csv_labels_outside_the_class_list(tmp_path: Path, label: str) -> None:
    folder = tmp_path / "task"
    png(folder / "img" / "a.png", 1)
    (folder / "hi.csv").write_text(f"path,label,split\nimg/a.png,0,train\nimg/a.png,{label},train\n")
    task = custom_task(folder, data={"hi": "hi.csv", "lo": "hi.csv"})
    result = cli(*train_args(task, tmp_path / "runs"))
    assert_error(result, folder / "hi.csv", "row 3", f"label '{label}'")
    _no_runs(tmp_path / "runs")


# -------------------------------------------------------------------------------- fewer images than shots
@pytest.mark.parametrize(("per_class", "shots"), [((3, 3), 4), ((5, 1), 2), ((2, 2), 50)])
def test_fewer_images_than_shots_names_the_class(tmp_path: Path, per_class: tuple, shots: int) -> None:
    folder = tmp_path / "task"
    task = custom_task(folder, per_split={"train": max(per_class)})
    for i in range(per_class[1], max(per_class)):  # thin out the second class
        (folder / "hi" / "train" / CLASSES[1] / f"{i}.png").unlink()
    short = 0 if per_class[0] < shots else 1
    result = cli(*train_args(task, tmp_path / "runs", "--shots", shots))
    assert_error(
        result,
        f"class '{CLASSES[short]}' has {per_class[short]} high-end training images, fewer than {shots}",
    )
    _no_runs(tmp_path / "runs")


def test_more_shots_than_the_phantom_world_has(tmp_path: Path) -> None:
    result = cli("train", "--shots", "1000", "--out", tmp_path / "runs", "--no-evaluate")
    assert_error(result, "fewer than 1000 shots")
    _no_runs(tmp_path / "runs")


# -------------------------------------------------------------------------------------------- empty folders
@pytest.mark.parametrize("case", ["data-folder", "class-folders", "one-class", "lo-folder"])
def test_empty_folders(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "task"
    task = custom_task(folder, per_split={"train": 2, "test": 1})
    args = train_args(task, tmp_path / "runs")
    if case == "data-folder":
        shutil.rmtree(folder / "hi")
        (folder / "hi").mkdir()
        needles = [folder / "hi", "empty data folder"]
    elif case == "class-folders":
        for name in CLASSES:
            shutil.rmtree(folder / "hi" / "train" / name)
            (folder / "hi" / "train" / name).mkdir()
        needles = ["class 'smooth nodule' has no high-end training images"]
    elif case == "one-class":
        shutil.rmtree(folder / "hi" / "train" / CLASSES[1])
        needles = ["class 'spiculated mass' has no high-end training images"]
    else:  # the low-end folder is read by evaluation only: found before the run starts? no, at evaluation
        shutil.rmtree(folder / "lo")
        (folder / "lo").mkdir()
        args = [a for a in args if a != "--no-evaluate"]
        result = cli(*args)
        assert_error(result, folder / "lo", "empty data folder", notes=True)
        [run] = run_folders(tmp_path / "runs")
        assert runs.open_run(run).status == "failed"
        return
    assert_error(cli(*args), *needles)
    _no_runs(tmp_path / "runs")


@pytest.mark.parametrize("content", ["nothing", "only-text-files", "only-hidden"])
def test_predict_on_a_folder_without_images(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    if content == "only-text-files":
        (folder / "notes.txt").write_text("x")
        (folder / "sub").mkdir()
        (folder / "sub" / "readme.md").write_text("x")
    elif content == "only-hidden":
        png(folder / ".hidden.png", 1)
    prompts = _prompts_file(tmp_path)
    result = cli("predict", folder, "--embeddings", prompts, "--output", tmp_path / "p.csv")
    assert_error(result, folder, "no image files found")
    assert not (tmp_path / "p.csv").exists()


def test_data_check_on_an_empty_folder(tmp_path: Path) -> None:
    task = custom_task(tmp_path / "task", per_split={"train": 1})
    shutil.rmtree(tmp_path / "task" / "lo")
    (tmp_path / "task" / "lo").mkdir()
    assert_error(cli("data", "check", task), tmp_path / "task" / "lo", "empty data folder")


# ------------------------------------------------------------------------ non-image and corrupt image files
def _corrupt(path: Path, kind: str) -> Path:
    """Turn ``path`` (a PNG) into a bad file of ``kind``; returns the path the error must name."""
    good = path.read_bytes()
    if kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 3])
    elif kind == "random-bytes":
        path.write_bytes(os.urandom(300))
    elif kind == "html":
        path.write_text("<html><body>404 Not Found</body></html>")
    elif kind == "wrong-magic":
        path.write_bytes(b"\x89PNX" + good[4:])
    elif kind == "broken-link":
        path.unlink()
        path.symlink_to(path.parent / "gone.png")
    elif kind == "dicom-no-pixels":
        path.unlink()
        path = path.with_suffix(".dcm")
        path.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x001.2\x00")
    else:
        raise AssertionError(kind)
    return path


BAD_FILES = [
    "text",
    "empty",
    "truncated",
    "random-bytes",
    "html",
    "wrong-magic",
    "broken-link",
    "dicom-no-pixels",
]


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_training_image_is_named_before_any_run_folder(tmp_path: Path, kind: str) -> None:
    folder = tmp_path / "task"
    task = custom_task(folder, per_split={"train": 2})  # shots 2: every training image is read
    bad = _corrupt(folder / "hi" / "train" / CLASSES[1] / "1.png", kind)
    result = cli(*train_args(task, tmp_path / "runs"))
    assert_error(result, bad)
    _no_runs(tmp_path / "runs")


def test_predict_reports_bad_files_on_their_rows(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    expected = {}
    for i, kind in enumerate(BAD_FILES):
        expected[_corrupt(png(folder / f"{i}-{kind}.png", i), kind).name] = kind
    png(folder / "good-1.png", 101)
    png(folder / "deep" / "good-2.png", 102)
    (folder / "notes.txt").write_text("skipped: not named like an image")
    prompts = _prompts_file(tmp_path)
    result = cli("predict", folder, "--embeddings", prompts, "--workers", "0")
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == {*expected, "good-1.png", "good-2.png"}
    for name in expected:
        assert by_name[name]["error"] and not by_name[name]["label"], by_name[name]
    for name in ("good-1.png", "good-2.png"):
        assert by_name[name]["label"] in CLASSES and not by_name[name]["error"]
    assert len(result.lines) == 1 and result.lines[0].startswith("kmat: predict done: 2 ok, 8 failed")


def test_predict_with_only_bad_files_exits_1_with_rows(tmp_path: Path) -> None:
    bad = _corrupt(png(tmp_path / "x.png", 1), "truncated")
    result = cli("predict", bad, "--embeddings", _prompts_file(tmp_path), "--workers", "0")
    assert result.code == 1
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert len(rows) == 1 and "truncated" in rows[0]["error"]


# -------------------------------------------------------------- embeddings for another backbone / class list
def _prompts_file(tmp_path: Path, meta: dict | None = None, tensors: dict | None = None) -> Path:
    """A valid prompts.safetensors for the phantom backbone (2 classes), with metadata/tensors overridden."""
    path = tmp_path / f"prompts-{len(list(tmp_path.glob('prompts-*')))}.safetensors"
    return prompts_file(path, CLASSES, meta, tensors)


EMBEDDING_FAULTS = [
    ({"kmat.backbone": "open_clip:ViT-B-32@openai"}, None, "made with backbone 'open_clip:ViT-B-32@openai'"),
    ({"kmat.embed_dim": "512"}, None, "dimension"),
    (None, {"text_embeddings.lo": [2, 512]}, "dimension"),
    ({"kmat.preprocess": json.dumps({"image_size": 224})}, None, "preprocessing"),
    ({"kmat.class_names": json.dumps(["a", "b", "c"])}, None, "for 3 classes"),
    ({"kmat.class_names": "[broken"}, None, "incomplete kmat metadata"),
    ({"kmat.format": None}, None, "not a kmat.prompts/v1 file"),
    ({"kmat.backbone_config": None}, None, "no kmat.backbone_config"),
]


@pytest.mark.parametrize(("meta", "shapes", "needle"), EMBEDDING_FAULTS)
def test_embeddings_made_for_another_backbone_or_class_list(
    tmp_path: Path, meta: dict | None, shapes: dict | None, needle: str
) -> None:
    import torch

    tensors = {k: torch.randn(*v) for k, v in (shapes or {}).items()}
    prompts = _prompts_file(tmp_path, meta, tensors)
    result = cli(
        "predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--output", tmp_path / "p.csv"
    )
    assert_error(result, prompts, needle)
    assert not (tmp_path / "p.csv").exists()


def test_embeddings_lacking_the_modality(tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    src = _prompts_file(tmp_path)
    with safe_open(str(src), "pt") as f:
        meta, hi = f.metadata(), f.get_tensor("text_embeddings.hi")
    save_file({"text_embeddings.hi": hi}, str(src), metadata=meta)
    result = cli("predict", png(tmp_path / "x.png", 1), "--embeddings", src, "--modality", "lo")
    assert_error(result, src, "no embeddings for modality 'lo'")


def test_run_with_prompts_of_another_class_order(tmp_path: Path) -> None:
    """A prompts.safetensors copied into a run from a run of the same backbone but another class order
    would label every image with its twin's name: refused."""
    a = custom_task(tmp_path / "a", per_split={"train": 2})
    b = custom_task(tmp_path / "b", classes=list(reversed(CLASSES)), per_split={"train": 2})
    assert cli(*train_args(a, tmp_path / "ra")).code == 0
    assert cli(*train_args(b, tmp_path / "rb")).code == 0
    [run_a], [run_b] = run_folders(tmp_path / "ra"), run_folders(tmp_path / "rb")
    shutil.copy(run_b / "prompts.safetensors", run_a / "prompts.safetensors")
    result = cli("predict", tmp_path / "a" / "lo", "--run", run_a, "--output", tmp_path / "p.csv")
    assert_error(result, run_a / "prompts.safetensors", "['spiculated mass', 'smooth nodule']")
    assert not (tmp_path / "p.csv").exists()


# ----------------------------------------------------------------------- descriptions with missing classes
DESCRIPTION_FAULTS = [
    ({"smooth nodule": ["a round thing"]}, "no descriptions for class 'spiculated mass'"),
    (
        {"format": "kmat.descriptions/v1", "classes": {"smooth nodule": {"hi": ["a"], "lo": ["b"]}}},
        "no descriptions for class 'spiculated mass'",
    ),
    (
        {"format": "kmat.descriptions/v1", "classes": {c: {"hi": ["a"]} for c in CLASSES}},
        "class 'smooth nodule' has no descriptions for modality 'lo'",
    ),
    ({c: [] for c in CLASSES}, "class 'smooth nodule' has no descriptions"),
    ({c: ["  ", ""] for c in CLASSES}, "class 'smooth nodule' has no descriptions"),
    ({c: [3, None] for c in CLASSES}, "class 'smooth nodule' has no descriptions"),
    (["smooth nodule", "spiculated mass"], "expected a JSON object"),
    ("{not json", "not valid JSON"),
    (None, "descriptions file not found"),
]


@pytest.mark.parametrize(("doc", "needle"), DESCRIPTION_FAULTS)
def test_descriptions_file_faults(tmp_path: Path, doc: object, needle: str) -> None:
    task = custom_task(tmp_path / "task", per_split={"train": 2})
    path = tmp_path / "d.json"
    if isinstance(doc, str):
        path.write_text(doc)
    elif doc is not None:
        path.write_text(json.dumps(doc))
    result = cli(*train_args(task, tmp_path / "runs", "--descriptions", path))
    assert_error(result, path, needle)
    _no_runs(tmp_path / "runs")
    assert_no_finished_runs(tmp_path / "runs")
