"""Data files kmat reads (JSON and YAML) under hostile input: malformed YAML, alias bombs, nesting without
bound, repeated keys, huge values, integers too long for Python to convert, numbers that are not finite,
files too large. Each is one ``kmat: error:`` line naming the file, exit code 2, never a RecursionError or
ValueError traceback; :mod:`kmat_cli.datafiles` reads valid data exactly as :mod:`json` does.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from faults import PHANTOM, assert_error, assert_no_runs, cli, custom_task, run_folders, train_args

from kmat_cli import datafiles, runs

pytestmark = pytest.mark.usefixtures("no_progress")

DEEP = "[" * 100_000 + "]" * 100_000  # far beyond Python's recursion limit
HUGE_INT = "9" * 5000  # beyond Python's 4300-digit conversion limit


# ------------------------------------------------------------------------------------------- the reader
@pytest.mark.parametrize(
    "text",
    ['{"a": [1, 2.5, -3e-7, true, null, "x"], "b": {"c": {}}}', "[]", '"\\u00e9"', "12345678901234567890"],
)
def test_valid_json_reads_as_the_json_module_reads_it(text: str) -> None:
    assert datafiles.parse_json(text, "s") == json.loads(text)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (DEEP, "nested more than"),
        ("[" * 70 + "]" * 70, "nested more than 64"),
        ('{"a": ' * 70 + "1" + "}" * 70, "nested more than 64"),
        (HUGE_INT, "5000 digits"),
        (f'{{"seed": -{HUGE_INT}}}', "5000 digits"),
        ('{"usage": NaN}', "NaN"),
        ('{"usage": -Infinity}', "-Infinity"),
        ('{"usage": 1e400}', "1e400"),
        ("{", "not valid JSON"),
    ],
)
def test_hostile_json_is_one_data_error(text: str, needle: str) -> None:
    with pytest.raises(datafiles.DataError) as info:
        datafiles.parse_json(text, "src.json", hint="fix it")
    message = str(info.value)
    assert message.startswith("src.json: ") and needle in message and message.endswith("; fix it")
    assert "\n" not in message


def test_file_size_is_bounded(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 600 + "0]", encoding="utf-8")
    with pytest.raises(datafiles.DataError, match=r"big\.json: larger than"):
        datafiles.read_json(big, max_bytes=1 << 10)
    assert len(datafiles.read_json(big)) == 601
    with pytest.raises(datafiles.MissingFile, match=r"nothere\.json: not found"):
        datafiles.read_json(tmp_path / "nothere.json")
    (tmp_path / "latin1.json").write_bytes(b'["\xe9"]')
    with pytest.raises(datafiles.DataError, match=r"latin1\.json: cannot read it: not UTF-8"):
        datafiles.read_json(tmp_path / "latin1.json")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (f"a: {HUGE_INT}", "5000 digits"),
        (f"a: [-{HUGE_INT}]", "5000 digits"),
        ("a: 1.0e+400", "out of range"),
    ],
)
def test_hostile_yaml_numbers_are_one_data_error(text: str, needle: str) -> None:
    with pytest.raises(datafiles.DataError, match=needle):
        datafiles.parse_yaml(text, "src.yaml")


def test_yaml_numbers_within_bounds_read_as_before() -> None:
    data = datafiles.parse_yaml("a: 4294967295\nb: 0x1F\nc: 1.5\nd: .inf\ne: -1_000", "s")
    assert data["a"] == 2**32 - 1 and data["b"] == 31 and data["c"] == 1.5 and data["e"] == -1000
    assert math.isinf(data["d"])  # written as infinity: the config validator says where it is refused


# ----------------------------------------------------------------------------------- through the CLI
def test_huge_integer_in_set_config_and_task_file(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = cli("train", *PHANTOM, "--set", f"train.seed={HUGE_INT}", "--out", out)
    assert_error(result, "--set", "5000 digits")
    config = tmp_path / "c.yaml"
    config.write_text(f"train:\n  seed: {HUGE_INT}\n", encoding="utf-8")
    assert_error(cli("train", *PHANTOM, "--config", config, "--out", out), str(config), "5000 digits")
    task = custom_task(tmp_path / "task", config={"train": {"seed": 1}})
    task.write_text(
        task.read_text(encoding="utf-8").replace("seed: 1", f"seed: {HUGE_INT}"), encoding="utf-8"
    )
    assert_error(cli(*train_args(task, out)), str(task), "5000 digits")
    assert not run_folders(out)


def test_deeply_nested_descriptions_and_split_file(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    task = custom_task(tmp_path / "task")
    deep = tmp_path / "task" / "deep.json"
    deep.write_text(DEEP, encoding="utf-8")
    result = cli(*train_args(task, out, "--descriptions", deep))
    assert_error(result, str(deep), "nested more than")
    split_task = custom_task(tmp_path / "split", data="deep.json")
    (tmp_path / "split" / "deep.json").write_text('{"hi": ' + DEEP + "}", encoding="utf-8")
    assert_error(cli(*train_args(split_task, out)), "deep.json", "nested more than")
    assert not run_folders(out)


@pytest.mark.parametrize(
    ("usage", "needle"), [(b"NaN", "NaN"), (b"1e400", "1e400"), (b"[" * 50_000 + b"]" * 50_000, "nested")]
)
def test_llm_answer_with_non_finite_or_deep_usage(
    tmp_path: Path, chat_server: Any, fresh_cache: Path, usage: bytes, needle: str
) -> None:
    content = json.dumps(json.dumps({"descriptions": [f"finding {i}" for i in range(8)]}))
    body = (
        b'{"id": "x", "model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": '
        + content.encode()
        + b'}}], "usage": {"prompt_tokens": '
        + usage
        + b"}}"
    )
    chat_server.answer = lambda handler: (200, body)
    task = custom_task(tmp_path / "task", per_split={"train": 1, "test": 1})
    result = cli(
        "describe", "--task", task, "-n", "4", "--base-url", chat_server.base_url, "--model", "m",
        "--output", tmp_path / "d.json",
    )  # fmt: skip
    assert_error(result, chat_server.base_url, needle)
    assert not (tmp_path / "d.json").exists()


# ------------------------------------------------------------------------------------ benchmark records
@pytest.fixture(scope="module")
def shard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-cell benchmark folder (zero-shot on phantom, one seed)."""
    out = tmp_path_factory.mktemp("bench") / "shard"
    grid = ["--task", "phantom", "--methods", "zeroshot", "--seeds", "1", "--epochs", "1", "--shots", "1"]
    result = cli("benchmark", *grid, "--no-plots", "--out", out)
    assert result.code == 0, result.err
    return out


RESULT_DAMAGE = {
    "metrics-list": ('{"format": "kmat.cell-result/v1", "metrics": [1]}', "'metrics' must be an object"),
    "metrics-hi-text": ('{"format": "kmat.cell-result/v1", "metrics": {"hi": "x"}}', "'metrics.hi'"),
    "timing-list": ('{"format": "kmat.cell-result/v1", "metrics": {}, "timing": [1]}', "'timing'"),
    "checks-text": ('{"format": "kmat.cell-result/v1", "metrics": {}, "checks": "x"}', "'checks'"),
    "run-number": ('{"format": "kmat.cell-result/v1", "metrics": {}, "run": 5}', "'run' must be text"),
    "not-json": ("{", "not valid JSON"),
    "nan": ('{"format": "kmat.cell-result/v1", "metrics": {"hi": {"accuracy": NaN}}}', "NaN"),
    "deep": (DEEP, "nested more than"),
}


@pytest.mark.parametrize("damage", sorted(RESULT_DAMAGE))
def test_merge_reports_a_malformed_cell_result_as_failed(tmp_path: Path, shard: Path, damage: str) -> None:
    """A damaged ``result.json`` in a shard is a failed cell naming the file (the report is still written,
    exit code 1 as for any failed cell); running the benchmark again computes the cell anew."""
    copy = tmp_path / "shard"
    shutil.copytree(shard, copy)
    [result_file] = copy.glob("cells/*/result.json")
    text, needle = RESULT_DAMAGE[damage]
    result_file.write_text(text, encoding="utf-8")
    merged = cli("benchmark", "merge", copy, "--out", tmp_path / "merged", "--no-plots")
    assert merged.code == 1 and "Traceback" not in merged.err, merged.err
    assert "1 cells did not finish" in merged.err
    report = (tmp_path / "merged" / "report.md").read_text(encoding="utf-8")
    [row] = [line for line in report.splitlines() if str(result_file) in line]
    assert needle in row and "\n" not in row


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
        assert_no_runs(out)


def _bomb(levels: int = 9) -> str:
    """A "billion laughs" YAML flow list: anchor ``l0`` holds nine strings, each ``l<i>`` nine aliases of
    ``l<i-1>`` (9 ** levels strings once expanded, from a few hundred bytes)."""
    items = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    items += [f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return f"[{', '.join(items)}]"


# ---------------------------------------------------------------------------------------- unbounded YAML
@pytest.mark.parametrize("where", ["config", "task", "set", "grid"])
def test_yaml_alias_bomb_is_refused_at_once(tmp_path: Path, where: str) -> None:
    """Anchors and aliases are refused wherever user YAML is read, before anything is expanded."""
    out = tmp_path / "runs"
    if where == "config":
        source = tmp_path / "bomb.yaml"
        source.write_text(f"train:\n  lr: {_bomb()}\n", encoding="utf-8")
        args = ["train", "--config", source, "--out", out]
    elif where == "task":
        source = custom_task(tmp_path / "task", per_split={"train": 2})
        text = source.read_text(encoding="utf-8")
        source.write_text(f"{text}config:\n  train:\n    lr: {_bomb()}\n", encoding="utf-8")
        args = ["train", "--task", source, "--out", out]
    elif where == "set":
        source = "--set"
        args = ["train", "--set", f"train.lr={_bomb()}", "--out", out]
    else:
        source = "--grid"
        args = ["tune", "--grid", f"method.lambda1={_bomb()}", "--out", out]
    started = time.perf_counter()
    result = cli(*args)
    seconds = time.perf_counter() - started
    line = assert_error(result, source, "anchors and aliases")
    assert len(line) < 400, f"the error line is {len(line)} characters"
    assert seconds < 2, f"refusing the alias bomb took {seconds:.1f} s"
    assert_no_runs(out)


def test_deeply_nested_yaml_is_refused_naming_the_file(tmp_path: Path) -> None:
    config = tmp_path / "deep.yaml"
    config.write_text("train: " + "[" * 10_000 + "]" * 10_000 + "\n", encoding="utf-8")
    assert_error(cli("train", "--config", config, "--out", tmp_path / "runs"), config, "nested")
    assert_no_runs(tmp_path / "runs")


def test_a_huge_value_is_shown_shortened_in_the_error(tmp_path: Path) -> None:
    config = tmp_path / "big.yaml"
    config.write_text("train: {lr: [" + ", ".join(["123456789"] * 1_000) + "]}\n", encoding="utf-8")
    line = assert_error(cli("train", "--config", config, "--out", tmp_path / "runs"), "train.lr")
    assert len(line) < 400, f"the error line is {len(line)} characters"
    assert_no_runs(tmp_path / "runs")


@pytest.mark.parametrize("where", ["config", "task"])
def test_a_key_given_twice_is_refused_naming_key_and_file(tmp_path: Path, where: str) -> None:
    if where == "config":
        source = tmp_path / "dup.yaml"
        source.write_text("train:\n  epochs: 1\n  shots: 2\n  epochs: 3\n", encoding="utf-8")
        args = ["train", "--config", source]
    else:
        source = custom_task(tmp_path / "task")
        source.write_text(source.read_text(encoding="utf-8") + "name: other\n", encoding="utf-8")
        args = ["train", "--task", source]
    line = assert_error(cli(*args, "--out", tmp_path / "runs"), source, "given twice")
    assert ("'epochs'" if where == "config" else "'name'") in line
    assert_no_runs(tmp_path / "runs")
