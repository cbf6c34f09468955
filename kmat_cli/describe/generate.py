"""Asking a chat endpoint for class descriptions: :func:`describe` and its :class:`Settings`.

For every (class, modality) pair, :func:`describe` renders the prompt template
(:mod:`kmat_cli.describe.template`), asks an OpenAI-compatible chat endpoint
(:mod:`kmat_cli.describe.chat`) for ``n`` descriptions, parses the answer tolerantly and validates the
items (:mod:`kmat_cli.describe.parse`), and tops the set up with follow-up requests until ``n`` valid
descriptions exist (at most ``max_rounds`` requests per pair). Pairs run concurrently (``concurrency``
requests in flight at most). The result is a descriptions document (:mod:`kmat_cli.descriptions`) with
the provenance of every answer.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from kmat_cli import __version__
from kmat_cli.describe.chat import ChatClient
from kmat_cli.describe.parse import Rejected, accept, parse_answer
from kmat_cli.describe.template import PromptTemplate
from kmat_cli.descriptions import DESCRIPTIONS_FORMAT
from kmat_cli.errors import RuntimeFailure, UsageError

DEFAULT_MODEL = "gpt-4o-mini"


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
            raise failed[0].exception()  # type: ignore[misc]  # not None: failed holds the futures that raised
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
