"""LLM-written class descriptions with provenance: ``kmat describe``'s library.

For every (class, modality) pair, :func:`describe` renders the prompt template, asks an OpenAI-compatible
chat endpoint (:mod:`kmat_cli.chat`) for ``n`` descriptions, parses the answer tolerantly
(:func:`parse_answer`: JSON, JSON in code fences, numbered or bulleted lists, plain lines), validates the
items (:func:`accept`: non-empty, at most ``max_words`` words, duplicates dropped ignoring case and
punctuation) and tops the set up with follow-up requests until ``n`` valid descriptions exist (at most
``max_rounds`` requests per pair). Pairs run concurrently (``concurrency`` requests in flight at most).

The result is a descriptions document (DESIGN.md "Files")::

    {"format": "kmat.descriptions/v1",
     "provenance": {"model": ..., "base_url_host": ..., "temperature": ..., "seed": ...,
                    "prompt_template_sha256": ..., "date": ..., "kmat_version": ..., ...},
     "classes": {class: {modality: [str, ...]}}}

:func:`merge_documents` adds a new document to an existing one (the new classes/modalities replace the old
ones, everything else is kept) and keeps the older provenance records under ``provenance["merged"]``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from kmat_cli import __version__, atomic
from kmat_cli.api import DESCRIPTIONS_FORMAT, MODALITIES
from kmat_cli.chat import ChatClient
from kmat_cli.errors import RuntimeFailure, UsageError

DEFAULT_MODEL = "gpt-4o-mini"
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


# ------------------------------------------------------------------------------------------- the template
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_HEADING = re.compile(r"^##[ \t]+(.+?)[ \t]*$", re.M)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w-]*)\s*\}\}")
_SECTIONS = {"system": "system", "user": "user", "topup": "top-up"}


def default_template_text() -> str:
    """The shipped template, ``kmat_cli/templates/describe_prompt.md`` (documented in its comments)."""
    return (resources.files("kmat_cli") / "templates" / DEFAULT_TEMPLATE).read_text(encoding="utf-8")


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt template: ``## system``, ``## user`` and ``## top-up`` sections with ``{{placeholders}}``.

    ``sha256`` is the hash of the file's bytes (recorded in provenance); ``name`` its file name.
    HTML comments are documentation and are never sent. See ``kmat_cli/templates/describe_prompt.md``.
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


# ----------------------------------------------------------------------------------- parsing, validation
_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_FENCE = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)(```|$)", re.S)
_MARKER = re.compile(r"^\s*(?:\(?\d{1,3}[.):]|[-*•–+])\s+")
_JSON_KEY_LINE = re.compile(r'^\s*[\[{]?\s*"[^"]*"\s*:\s*[\[{]?\s*$')
_TEXT_KEYS = ("description", "text", "desc", "content", "sentence")
_QUOTES = "\"'`“”‘’«»"


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
            return json.loads(candidate)
        except ValueError:
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


# ------------------------------------------------------------------------------------------ describing
@dataclass(frozen=True)
class Settings:
    """What to ask for: ``n`` descriptions per class and modality from ``model``, at ``temperature``.

    ``seed`` is sent when set (servers that support it sample reproducibly); ``max_rounds`` bounds the
    requests per (class, modality) pair, top-ups included; ``max_tokens`` is sent when set.
    """

    model: str = DEFAULT_MODEL
    n: int = 50
    temperature: float = 0.7
    seed: int | None = None
    max_words: int = 30
    max_rounds: int = 6
    concurrency: int = 4
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        if not self.model.strip():
            raise UsageError("--model must not be empty")
        if not 1 <= self.n <= 1000:
            raise UsageError(f"-n must be between 1 and 1000 (got {self.n})")
        if not 0.0 <= self.temperature <= 2.0:
            raise UsageError(f"--temperature must be between 0 and 2 (got {self.temperature})")
        if self.max_words < 1 or self.max_rounds < 1 or self.concurrency < 1:
            raise UsageError("--max-words, --max-rounds and --concurrency must be at least 1")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise UsageError("--max-tokens must be at least 1")


@dataclass
class _Stats:
    sent: int = 0
    cached: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    models: set[str] = field(default_factory=set)
    rejected: Rejected = field(default_factory=Rejected)

    def add(self, other: _Stats) -> None:
        self.sent += other.sent
        self.cached += other.cached
        for k, v in other.usage.items():
            self.usage[k] = self.usage.get(k, 0) + v
        self.models |= other.models
        self.rejected.add(other.rejected)


@dataclass
class DescribeResult:
    """Descriptions ``classes[class][modality] -> list[str]``, their provenance, request counts."""

    classes: dict[str, dict[str, list[str]]]
    provenance: dict[str, Any]
    sent: int
    cached: int

    def document(self) -> dict[str, Any]:
        """The descriptions document (``kmat.descriptions/v1``)."""
        return {"format": DESCRIPTIONS_FORMAT, "provenance": self.provenance, "classes": self.classes}


class _Cancelled(Exception):
    """Another job failed; this one stopped before its next request."""


def _describe_pair(
    client: ChatClient,
    settings: Settings,
    template: PromptTemplate,
    values: dict[str, Any],
    stop: threading.Event,
    advance: Callable[[int], None],
) -> tuple[list[str], _Stats]:
    """``n`` valid descriptions of one (class, modality) pair: one request, then top-ups."""
    accepted: list[str] = []
    seen: set[str] = set()
    stats = _Stats()
    repeats: dict[str, int] = {}
    for _ in range(settings.max_rounds):
        if stop.is_set():
            raise _Cancelled
        missing = settings.n - len(accepted)
        messages = template.messages({**values, "missing": missing}, accepted)
        body: dict[str, Any] = {
            "model": settings.model,
            "messages": messages,
            "temperature": settings.temperature,
        }
        signature = json.dumps(body, sort_keys=True)
        repeat = repeats.get(signature, 0)
        repeats[signature] = repeat + 1
        if settings.seed is not None:
            body["seed"] = settings.seed + repeat
        if settings.max_tokens is not None:
            body["max_tokens"] = settings.max_tokens
        answer = client.complete(body, repeat=repeat)
        stats.cached += answer.cached
        stats.sent += not answer.cached
        for k, v in answer.usage.items():
            stats.usage[k] = stats.usage.get(k, 0) + v
        if answer.model:
            stats.models.add(answer.model)
        new = accept(
            parse_answer(answer.content), max_words=settings.max_words, seen=seen, rejected=stats.rejected
        )
        new = new[:missing]
        accepted.extend(new)
        advance(len(new))
        if len(accepted) >= settings.n:
            return accepted, stats
    raise RuntimeFailure(
        f"model '{settings.model}' gave {len(accepted)} of {settings.n} valid descriptions for class "
        f"'{values['class_name']}' ({values['modality_key']}: {values['modality']}) in "
        f"{settings.max_rounds} requests; lower -n, raise --max-words or --max-rounds, or try another model"
    )


def _run_all(
    jobs: Mapping[Any, dict[str, Any]],
    run: Callable[[dict[str, Any], threading.Event], Any],
    concurrency: int,
) -> dict[Any, Any]:
    """``run(values, stop)`` for every job on ``concurrency`` threads; the results by job key.

    On the first error (or Ctrl-C) ``stop`` is set, so every other job ends before its next request,
    jobs not yet started are dropped, and the error is raised.
    """
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(jobs))))
    try:
        futures = {pool.submit(run, values, stop): key for key, values in jobs.items()}
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        return {key: future.result() for future, key in futures.items()}
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def describe(
    class_names: Sequence[str],
    modalities: Mapping[str, str],
    *,
    client: ChatClient,
    settings: Settings | None = None,
    template: PromptTemplate | None = None,
    task: str = "",
    which: Sequence[str] | None = None,
    on_progress: Callable[[str, int], None] | None = None,
) -> DescribeResult:
    """Ask ``client``'s endpoint for ``settings.n`` descriptions of every class in every modality.

    ``modalities`` maps keys to words (``{"hi": "dermoscopy", "lo": "clinical photograph"}``); ``which``
    restricts the keys described (default: all). ``on_progress(class_name, k)`` is called as ``k`` more
    descriptions of a class are accepted (from worker threads). The first error stops every job before its
    next request and is raised (a :class:`~kmat_cli.errors.KmatError`, one line).
    """
    settings = settings or Settings()
    template = template or PromptTemplate.load()
    names = [str(c) for c in class_names]
    if not names or len(set(names)) != len(names):
        raise UsageError("the class names must be a non-empty list without repeats")
    keys = list(which) if which is not None else list(modalities)
    unknown = [k for k in keys if k not in modalities]
    if unknown or not keys:
        raise UsageError(
            f"unknown modality '{(unknown or [''])[0]}'; this task has: {', '.join(modalities) or 'none'}"
        )
    jobs = {
        (c, m): {
            "task": task,
            "class_name": c,
            "classes": ", ".join(names),
            "modality": modalities[m],
            "modality_key": m,
            "other_modality": ", ".join(w for k, w in modalities.items() if k != m),
            "n": settings.n,
            "max_words": settings.max_words,
        }
        for c in names
        for m in keys
    }

    def run(values: dict[str, Any], stop: threading.Event) -> tuple[list[str], _Stats]:
        def advance(k: int) -> None:
            if on_progress is not None and k:
                on_progress(values["class_name"], k)

        return _describe_pair(client, settings, template, values, stop, advance)

    outcomes = _run_all(jobs, run, settings.concurrency)
    classes: dict[str, dict[str, list[str]]] = {c: {} for c in names}
    stats = _Stats()
    for (c, m), (texts, job_stats) in outcomes.items():
        classes[c][m] = texts
        stats.add(job_stats)
    for c in names:  # modality order as given, whatever order the jobs finished in
        classes[c] = {m: classes[c][m] for m in keys}
    provenance = {
        "tool": "kmat describe",
        "kmat_version": __version__,
        "date": _now(),
        "task": task,
        "classes": names,
        "modalities": {m: modalities[m] for m in keys},
        "n": settings.n,
        "model": settings.model,
        "models_answering": sorted(stats.models),
        "base_url_host": client.endpoint.host,
        "temperature": settings.temperature,
        "seed": settings.seed,
        "max_words": settings.max_words,
        "max_tokens": settings.max_tokens,
        "prompt_template": template.name,
        "prompt_template_sha256": template.sha256,
        "requests": {"sent": stats.sent, "cached": stats.cached},
        "usage": stats.usage,
        "rejected": {
            "empty": stats.rejected.empty,
            "too_long": stats.rejected.too_long,
            "duplicate": stats.rejected.duplicate,
        },
    }
    return DescribeResult(classes=classes, provenance=provenance, sent=stats.sent, cached=stats.cached)


# ------------------------------------------------------------------------------------------- documents
def _check_classes(classes: Any, where: str) -> dict[str, dict[str, list[str]]]:
    if not isinstance(classes, dict):
        raise UsageError(f"{where}: 'classes' must be an object of class -> {{modality: [text, ...]}}")
    for name, entry in classes.items():
        if not isinstance(entry, dict) or not all(
            isinstance(v, list) and all(isinstance(t, str) for t in v) for v in entry.values()
        ):
            raise UsageError(f"{where}: class '{name}' must map modalities to lists of strings")
    return classes


def read_document(path: str | Path) -> dict[str, Any]:
    """A descriptions file as a ``kmat.descriptions/v1`` document; the bare ``{class: [str]}`` form is
    expanded to every modality (``hi``, ``lo``) with a provenance record naming the file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: descriptions file not found") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a valid JSON descriptions file ({exc})") from exc
    if not isinstance(raw, dict):
        raise UsageError(f"{path}: expected a JSON object")
    if raw.get("format") == DESCRIPTIONS_FORMAT:
        provenance = raw.get("provenance") if isinstance(raw.get("provenance"), dict) else {}
        return {
            "format": DESCRIPTIONS_FORMAT,
            "provenance": provenance,
            "classes": _check_classes(raw.get("classes"), str(path)),
        }
    if "format" in raw:
        raise UsageError(f"{path}: unknown format '{raw['format']}' (expected {DESCRIPTIONS_FORMAT})")
    if not all(isinstance(v, list) and all(isinstance(t, str) for t in v) for v in raw.values()):
        raise UsageError(f"{path}: expected {DESCRIPTIONS_FORMAT} or a bare object of class -> [text, ...]")
    classes = {name: {m: list(texts) for m in MODALITIES} for name, texts in raw.items()}
    return {"format": DESCRIPTIONS_FORMAT, "provenance": {"source": f"file {path.name}"}, "classes": classes}


def task_document(task: Any) -> dict[str, Any]:
    """The descriptions a task ships (``task.descriptions[modality][class]``) as a document."""
    by_modality = task.descriptions
    classes: dict[str, dict[str, list[str]]] = {}
    for m, per_class in by_modality.items():
        for name, texts in per_class.items():
            classes.setdefault(name, {})[m] = list(texts)
    name = getattr(task, "name", type(task).__name__)
    return {
        "format": DESCRIPTIONS_FORMAT,
        "provenance": {"source": f"descriptions shipped with task '{name}'"},
        "classes": classes,
    }


def merge_documents(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``new``'s (class, modality) lists added or replacing base's; the rest is kept.

    The merged provenance is ``new``'s, with ``merged``: the earlier records, newest first (``base``'s
    own record, then the ones it had merged).
    """
    classes = copy.deepcopy(dict(base.get("classes", {})))
    for name, entry in new["classes"].items():
        classes.setdefault(name, {}).update(copy.deepcopy(entry))
    old = dict(base.get("provenance") or {})
    history = [r for r in old.pop("merged", []) if isinstance(r, dict)]
    provenance = {**copy.deepcopy(dict(new.get("provenance") or {})), "merged": [old, *history]}
    return {"format": DESCRIPTIONS_FORMAT, "provenance": provenance, "classes": classes}


def write_document(path: str | Path, document: Mapping[str, Any]) -> None:
    """Write a descriptions document as JSON, atomically."""
    atomic.write_json(path, dict(document))
