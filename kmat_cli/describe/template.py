"""The prompt template of ``kmat describe``: sections, placeholders, the chat messages of one request.

The shipped template is ``kmat_cli/describe/templates/describe_prompt.md`` (documented in its comments).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kmat_cli.errors import UsageError

DEFAULT_TEMPLATE = "describe_prompt.md"
PLACEHOLDERS = (
    "task",
    "class_name",
    "classes",
    "modality",
    "modality_key",
    "other_modality",
    "n",
    "missing",
    "max_words",
)
DEFAULT_TOPUP = (
    'Give {{missing}} more descriptions of "{{class_name}}" in {{modality}} images, each different from all '
    'of the above. Answer with JSON only: {"descriptions": ["...", "..."]}'
)

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_HEADING = re.compile(r"^##[ \t]+(.+?)[ \t]*$", re.M)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w-]*)\s*\}\}")
_SECTIONS = {"system": "system", "user": "user", "topup": "top-up"}


def default_template_text() -> str:
    """The shipped template, ``kmat_cli/describe/templates/describe_prompt.md`` (documented in its comments)."""
    return (resources.files("kmat_cli.describe") / "templates" / DEFAULT_TEMPLATE).read_text(encoding="utf-8")


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt template: ``## system``, ``## user`` and ``## top-up`` sections with ``{{placeholders}}``.

    ``sha256`` is the hash of the file's bytes (recorded in provenance); ``name`` its file name.
    HTML comments are documentation and are never sent. See ``kmat_cli/describe/templates/describe_prompt.md``.
    """

    name: str
    sha256: str
    sections: Mapping[str, str]

    @classmethod
    def load(cls, path: str | Path | None = None) -> PromptTemplate:
        """The template at ``path``, or the shipped default."""
        if path is None:
            return cls.parse(default_template_text().encode("utf-8"), "default (" + DEFAULT_TEMPLATE + ")")
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read the prompt template ({exc.strerror or exc})") from exc
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: bytes, where: str) -> PromptTemplate:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UsageError(f"{where}: the prompt template is not UTF-8 text") from exc
        text = _COMMENT.sub("", text)
        heads = list(_HEADING.finditer(text))
        sections: dict[str, str] = {}
        if not heads:
            sections["user"] = text.strip()
        for i, head in enumerate(heads):
            key = _SECTIONS.get(re.sub(r"[^a-z]", "", head.group(1).lower()))
            if key is None:
                raise UsageError(
                    f"{where}: unknown section '## {head.group(1)}'; use ## system, ## user, ## top-up"
                )
            end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
            sections[key] = text[head.end() : end].strip()
        if not sections.get("user"):
            raise UsageError(f"{where}: the prompt template has no '## user' message")
        sections.setdefault("top-up", DEFAULT_TOPUP)
        for body in sections.values():
            for match in _PLACEHOLDER.finditer(body):
                if match.group(1) not in PLACEHOLDERS:
                    raise UsageError(
                        f"{where}: unknown placeholder '{{{{{match.group(1)}}}}}'; "
                        f"known: {', '.join(PLACEHOLDERS)}"
                    )
        name = Path(where).name if not where.startswith("default") else where
        return cls(name=name, sha256=hashlib.sha256(data).hexdigest(), sections=sections)

    def render(self, section: str, values: Mapping[str, Any]) -> str:
        """One section with every ``{{placeholder}}`` replaced by ``values[placeholder]``."""
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), self.sections.get(section, "")).strip()

    def messages(self, values: Mapping[str, Any], accepted: Sequence[str] = ()) -> list[dict[str, str]]:
        """The chat messages of one request: system, user, and (with ``accepted``) the top-up turn."""
        out = []
        if self.sections.get("system"):
            out.append({"role": "system", "content": self.render("system", values)})
        out.append({"role": "user", "content": self.render("user", values)})
        if accepted:
            previous = json.dumps({"descriptions": list(accepted)}, ensure_ascii=False)
            out.append({"role": "assistant", "content": previous})
            out.append({"role": "user", "content": self.render("top-up", values)})
        return out
