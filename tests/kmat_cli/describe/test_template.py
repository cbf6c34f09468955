"""The prompt template: the default renders every section; a faulty template is an error naming its file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from kmat_cli import describe as lib
from kmat_cli.errors import UsageError


# ----------------------------------------------------------------------------------------------- template
def test_default_template_renders_every_section() -> None:
    template = lib.PromptTemplate.load()
    path = Path(lib.__file__).parent / "templates" / lib.DEFAULT_TEMPLATE
    assert template.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    values = {p: f"<{p}>" for p in lib.PLACEHOLDERS}
    messages = template.messages(values, accepted=["a", "b"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert json.loads(messages[2]["content"]) == {"descriptions": ["a", "b"]}
    text = "\n".join(m["content"] for m in messages)
    assert "{{" not in text and "<!--" not in text and "Placeholders" not in text
    assert "<class_name>" in messages[1]["content"] and "<missing>" in messages[3]["content"]


def test_template_errors_name_the_file() -> None:
    with pytest.raises(UsageError, match=r"t\.md: unknown section '## assistant'"):
        lib.PromptTemplate.parse(b"## user\nx\n## assistant\ny", "t.md")
    with pytest.raises(UsageError, match=r"t\.md: the prompt template has no '## user' message"):
        lib.PromptTemplate.parse(b"## system\nx", "t.md")
    with pytest.raises(UsageError, match=r"unknown placeholder '\{\{clas\}\}'"):
        lib.PromptTemplate.parse(b"describe {{clas}}", "t.md")
    with pytest.raises(UsageError, match="cannot read the prompt template"):
        lib.PromptTemplate.load("/no/such/template.md")
    bare = lib.PromptTemplate.parse(b'Describe {{class_name}} {"as": json}', "t.md")
    assert bare.messages({"class_name": "x"}) == [{"role": "user", "content": 'Describe x {"as": json}'}]
    assert "{{missing}}" in bare.sections["top-up"]
