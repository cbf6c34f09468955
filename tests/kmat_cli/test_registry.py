from __future__ import annotations

import pytest

from kmat_cli import registry
from kmat_cli.errors import UsageError

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
