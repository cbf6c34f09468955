"""Links between the docs point where they should."""

from __future__ import annotations

from repo_paths import REPO


def test_describe_doc_points_to_the_method_doc() -> None:
    text = (REPO / "docs" / "describe.md").read_text(encoding="utf-8")
    assert "METHOD.md" not in text and "(method.md)" in text
