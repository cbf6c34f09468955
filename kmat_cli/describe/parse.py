"""Reading a model's answer: the description items in it (:func:`parse_answer`), tidied (:func:`clean`)
and validated (:func:`accept`: non-empty, at most ``max_words`` words, duplicates dropped ignoring case and
punctuation)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kmat_cli import datafiles

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_FENCE = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)(```|$)", re.S)
_MARKER = re.compile(r"^\s*(?:\(?\d{1,3}[.):]|[-*•\u2013+])\s+")
_JSON_KEY_LINE = re.compile(r'^\s*[\[{]?\s*"[^"]*"\s*:\s*[\[{]?\s*$')
_TEXT_KEYS = ("description", "text", "desc", "content", "sentence")
_QUOTES = "\"'`\u201c\u201d\u2018\u2019«»"  # straight, curly (double, single), guillemets


def _strings(obj: Any) -> list[str]:
    """The description strings inside a parsed JSON answer (list, ``{"descriptions": [...]}``, ...)."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, list):
        out: list[str] = []
        for item in obj:
            if isinstance(item, dict):
                texts = [item[k] for k in _TEXT_KEYS if isinstance(item.get(k), str)]
                values = [v for v in item.values() if isinstance(v, str)]
                out.extend(texts[:1] or values[:1])
            else:
                out.extend(_strings(item))
        return out
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key.lower() in ("descriptions", "description", "items"):
                return _strings(value)
        return [s for v in obj.values() if isinstance(v, (list, dict)) for s in _strings(v)]
    return []


def _json_value(text: str) -> Any:
    """``text`` parsed as JSON, or the outermost ``{...}``/``[...]`` inside it; ``None`` if neither."""
    text = text.strip()
    candidates = [text]
    for opening, closing in ("{}", "[]"):
        start, end = text.find(opening), text.rfind(closing)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            return datafiles.parse_json(candidate, "the answer")
        except datafiles.DataError:
            continue
    return None


def _lines(text: str) -> list[str]:
    """List items from prose: marked lines (``1.``, ``2)``, ``-``, ``*``, ``•``) if any, else every line."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("```")]
    marked = [ln for ln in lines if _MARKER.match(ln)]
    if marked:
        return marked
    return [ln for ln in lines if not _is_noise(ln)]


def _is_noise(line: str) -> bool:
    """A heading ("Here they are:"), a JSON key line, punctuation, or a string cut off by a length limit."""
    text = line.strip().rstrip(",")
    cut_off = text.startswith('"') and (len(text) == 1 or not text.endswith('"'))
    return text.endswith(":") or bool(_JSON_KEY_LINE.match(text)) or not re.search(r"\w", text) or cut_off


def parse_answer(text: str) -> list[str]:
    """The raw items of a model's answer, in order (not yet cleaned or validated).

    Tried in turn: JSON in each code fence, the whole answer as JSON (or the outermost braces inside it),
    then list lines. Reasoning blocks (``<think>...</think>``) are ignored.
    """
    if "</think>" in text.lower() and "<think>" not in text.lower():
        text = text[text.lower().rindex("</think>") + len("</think>") :]
    text = _THINK.sub("", text)
    fences = [m.group(1) for m in _FENCE.finditer(text)]
    for candidate in [*fences, text]:
        found = _strings(_json_value(candidate))
        if found:
            return found
    return [item for block in (fences or [text]) for item in _lines(block)]


def clean(item: str) -> str:
    """One item tidied: list marker, quotes, trailing comma, markdown emphasis and extra spaces removed."""
    text = " ".join(_MARKER.sub("", item, count=1).replace("**", "").split())
    for _ in range(3):
        before = text
        text = text.strip().rstrip(",").strip()
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1]
        if text.startswith("__") and text.endswith("__") and len(text) > 4:
            text = text[2:-2]
        if text == before:
            break
    return text


def _dedupe_key(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


@dataclass
class Rejected:
    """Counts of items dropped by validation."""

    empty: int = 0
    too_long: int = 0
    duplicate: int = 0

    def add(self, other: Rejected) -> None:
        self.empty += other.empty
        self.too_long += other.too_long
        self.duplicate += other.duplicate


def accept(items: Sequence[str], *, max_words: int, seen: set[str], rejected: Rejected) -> list[str]:
    """The valid new items, cleaned: at least one letter, at most ``max_words`` words, not in ``seen``.

    ``seen`` (normalised keys: lower case, punctuation removed) is updated; drops are counted.
    """
    out = []
    for item in items:
        text = clean(item)
        if not re.search(r"[^\W\d_]", text):
            rejected.empty += 1
            continue
        if len(text.split()) > max_words:
            rejected.too_long += 1
            continue
        key = _dedupe_key(text)
        if key in seen:
            rejected.duplicate += 1
            continue
        seen.add(key)
        out.append(text)
    return out
