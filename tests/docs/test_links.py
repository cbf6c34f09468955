"""Links between the docs point where they should."""

from __future__ import annotations

import re
from pathlib import Path

from repo_paths import REPO


def test_describe_doc_points_to_the_method_doc() -> None:
    text = (REPO / "docs" / "describe.md").read_text(encoding="utf-8")
    assert "METHOD.md" not in text and "(method.md)" in text


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)


def anchor(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, markup and punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_\[\]()]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def markdown_files() -> list[Path]:
    found = [REPO / "README.md"]
    for folder in ("docs", "benchmarks", "examples"):
        found += sorted(p for p in (REPO / folder).rglob("*.md") if "build" not in p.parts)
    return found


def test_every_relative_link_in_the_markdown_reaches_a_file_and_its_heading() -> None:
    broken = []
    for page in markdown_files():
        text = page.read_text(encoding="utf-8")
        for target in LINK.findall(re.sub(r"```.*?```", "", text, flags=re.DOTALL)):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, fragment = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif fragment and file.suffix == ".md":
                anchors = {anchor(h) for h in HEADING.findall(file.read_text(encoding="utf-8"))}
                if fragment not in anchors:
                    broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
