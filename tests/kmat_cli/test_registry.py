from __future__ import annotations

import json
from pathlib import Path

import pytest
from faults import assert_error, assert_no_runs, cli, png, two_class_prompts

from kmat_cli import registry
from kmat_cli.errors import UsageError

pytestmark = pytest.mark.usefixtures("no_progress")

BUILT_INS = {
    "backbones": {"biomedclip", "open_clip", "phantom"},
    "transports": {"fgw", "wasserstein", "gw", "pot-fgw", "pot-wasserstein", "pot-gw"},
    "tasks": {"phantom", "skin1", "skin2", "chest", "breast"},
    "methods": {"zeroshot", "coop", "cocoop", "kgcoop", "biomedcoop", "kmat"},
}


@pytest.mark.parametrize("kind", registry.KINDS)
def test_every_built_in_is_declared(kind: str) -> None:
    infos = {i.name: i for i in registry.infos(kind)}
    assert BUILT_INS[kind] <= set(infos)
    assert all(infos[name].distribution == "kmat" for name in BUILT_INS[kind])


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UsageError, match=r"unknown task 'chst' \(did you mean 'chest'\?\); known: .*breast"):
        registry.get("tasks", "chst")


def test_unknown_name_without_close_match_lists_known() -> None:
    with pytest.raises(UsageError) as info:
        registry.get("methods", "zzzzzz")
    assert "did you mean" not in str(info.value)
    assert "coop" in str(info.value) and "kmat" in str(info.value)


def test_import_path_escape_hatch() -> None:
    assert registry.get("transports", "kmat_cli.errors:UsageError") is UsageError
    with pytest.raises(UsageError, match="no attribute"):
        registry.get("transports", "kmat_cli.errors:Nope")
    with pytest.raises(UsageError, match="cannot import"):
        registry.get("transports", "no_such_module_kmat:X")


def test_kind_may_be_singular_and_is_checked() -> None:
    assert registry.names("transport") == registry.names("transports")
    with pytest.raises(UsageError, match="did you mean 'tasks'"):
        registry.names("taks")


def test_summary_is_first_doc_line() -> None:
    class Documented:
        """First line.

        More.
        """

    assert registry.summary(Documented) == "First line."


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
    assert_no_runs(tmp_path / "runs")


def test_unknown_plugin_in_a_config_file_and_in_prompts_metadata(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("method: {name: nosuch}\n", encoding="utf-8")
    assert_error(cli("train", "--config", tmp_path / "c.yaml", "--out", tmp_path / "runs"), "'nosuch'")
    prompts = two_class_prompts(tmp_path, {"kmat.backbone_config": json.dumps({"name": "nosuch"})})
    result = cli("predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--workers", "0")
    assert_error(result, "unknown backbone 'nosuch'")
