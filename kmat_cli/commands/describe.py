"""``kmat describe``: class descriptions from any OpenAI-compatible chat endpoint, cached, with provenance."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from kmat_cli.commands import _options as options


def command(
    task: Annotated[str | None, options.task("Task whose classes to describe (kmat list tasks).")] = None,
    modalities: Annotated[
        str | None,
        typer.Option(
            "--modalities", help="Comma-separated modality keys to describe (default: all, e.g. hi,lo)."
        ),
    ] = None,
    classes: Annotated[
        str | None, typer.Option("--classes", help="Comma-separated class names (default: all).")
    ] = None,
    n: Annotated[int, typer.Option("-n", "--count", help="Descriptions per class and modality.")] = 50,
    model: Annotated[
        str | None, typer.Option("--model", help="Model name the endpoint serves (default gpt-4o-mini).")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="OpenAI-compatible API root, e.g. http://localhost:11434/v1 "
            "(default: $OPENAI_BASE_URL, else https://api.openai.com/v1).",
        ),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env", help="Environment variable holding the API key (default OPENAI_API_KEY)."
        ),
    ] = None,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature (0-2).")] = 0.7,
    seed: Annotated[
        int | None, options.seed("Sampling seed sent to the endpoint (if it supports one).")
    ] = None,
    prompt_template: Annotated[
        Path | None,
        typer.Option("--prompt-template", help="Prompt template file (see --show-template for the default)."),
    ] = None,
    output: Annotated[
        Path | None, options.output("Output JSON ('-' for stdout; default <task>.descriptions.json).")
    ] = None,
    merge: Annotated[
        Path | None,
        typer.Option(
            "--merge", help="Existing descriptions file to add to (written back unless --output is given)."
        ),
    ] = None,
    merge_task: Annotated[
        bool,
        typer.Option(
            "--merge-task", help="Start from the task's shipped descriptions and add/replace these."
        ),
    ] = False,
    max_words: Annotated[
        int, typer.Option("--max-words", help="Longest accepted description, in words.")
    ] = 30,
    max_rounds: Annotated[
        int, typer.Option("--max-rounds", help="Requests per class and modality, top-ups included.")
    ] = 6,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight at most.")] = 4,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds one whole answer may take.")] = 60.0,
    max_retries: Annotated[
        int, typer.Option("--max-retries", help="Retries on 429/5xx/timeouts (with backoff).")
    ] = 5,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", help="max_tokens sent with each request.")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Neither read nor write the request cache.")
    ] = False,
    show_template: Annotated[
        bool, typer.Option("--show-template", help="Print the default template and exit.")
    ] = False,
) -> None:
    """Write descriptions of a task's classes per modality with an LLM, for `kmat train --descriptions`.

    Works with any OpenAI-compatible chat endpoint (OpenAI, Azure, vLLM, Ollama, LM Studio). The key is
    read from $OPENAI_API_KEY (or --api-key-env NAME) and never stored. Answers are cached, so a rerun
    costs nothing. Offline, the hand-written descriptions every task ships are used by `kmat train`.

    Example: kmat describe --task skin1 -n 50 --model gpt-4o-mini --output skin1.json
    """
    import sys

    from kmat_cli import describe as lib

    if show_template:
        sys.stdout.write(lib.default_template_text())
        return

    from kmat_cli import registry
    from kmat_cli.envinfo import cache_dir
    from kmat_cli.errors import UsageError
    from kmat_cli.progress import rows, say, warn

    if not task:
        raise UsageError("--task is required, e.g. kmat describe --task skin1 (kmat list tasks)")
    if merge is not None and merge_task:
        raise UsageError("use --merge FILE or --merge-task, not both")
    template = lib.PromptTemplate.load(prompt_template)
    base = lib.read_document(merge) if merge is not None else None
    endpoint = _endpoint(base_url, api_key_env, timeout=timeout, max_retries=max_retries)
    settings = lib.Settings(
        model=model or lib.DEFAULT_MODEL,
        n=n,
        temperature=temperature,
        seed=seed,
        max_words=max_words,
        max_rounds=max_rounds,
        concurrency=concurrency,
        max_tokens=max_tokens,
    )
    task_obj = registry.get("tasks", task)()
    task_name = getattr(task_obj, "name", task)
    class_names = _class_names(task_obj, task_name, classes)
    which = [m.strip() for m in modalities.split(",") if m.strip()] if modalities else None
    if merge_task:
        base = lib.task_document(task_obj)
    cache = None if no_cache else lib.RequestCache(cache_dir() / "describe")
    total = settings.n * len(which or task_obj.modalities)
    with rows(class_names, total) as advance, lib.ChatClient(endpoint, cache=cache, notify=warn) as client:
        result = lib.describe(
            class_names,
            dict(task_obj.modalities),
            client=client,
            settings=settings,
            template=template,
            task=task_name,
            which=which,
            on_progress=advance,
        )
    document = result.document() if base is None else lib.merge_documents(base, result.document())
    _write(document, output or merge or Path(re.sub(r"[^\w.-]", "_", task_name) + ".descriptions.json"))
    pairs = len(class_names) * len(result.provenance["modalities"])
    say(
        f"{pairs} class/modality pairs x {settings.n} descriptions from {settings.model} at {endpoint.host}: "
        f"{result.sent} requests sent, {result.cached} from the cache"
    )


def _endpoint(base_url: str | None, api_key_env: str | None, *, timeout: float, max_retries: int) -> Any:
    """The chat endpoint of the options: ``--base-url`` (else $OPENAI_BASE_URL, else OpenAI) and the key
    in ``--api-key-env`` (else $OPENAI_API_KEY); a UsageError where the key is needed and missing."""
    from kmat_cli.describe import DEFAULT_BASE_URL, Endpoint
    from kmat_cli.errors import UsageError

    key_env = api_key_env or "OPENAI_API_KEY"
    api_key = os.environ.get(key_env) or None
    if api_key_env and api_key is None:
        raise UsageError(f"--api-key-env {api_key_env}: that environment variable is not set")
    endpoint = Endpoint(
        base_url=base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL,
        api_key=api_key,
        key_env=key_env,
        timeout=timeout,
        max_retries=max_retries,
    )
    if api_key is None and endpoint.host == "api.openai.com":
        raise UsageError(f"{key_env} is not set; api.openai.com needs an API key (or pass --base-url)")
    return endpoint


def _class_names(task: Any, task_name: str, classes: str | None) -> list[str]:
    """The task's class names, or those of ``--classes`` (comma-separated; each must be one of them)."""
    from kmat_cli.errors import UsageError

    class_names = list(task.class_names)
    if not classes:
        return class_names
    wanted = [c.strip() for c in classes.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in class_names]
    if unknown:
        raise UsageError(
            f"--classes: unknown class '{unknown[0]}'; {task_name} has: {', '.join(class_names)}"
        )
    return wanted


def _write(document: dict[str, Any], output: Path) -> None:
    """The document to ``output`` (atomically; its path echoed on stdout), or as JSON to stdout for ``-``."""
    import json
    import sys

    from kmat_cli.descriptions import write_document

    if str(output) == "-":
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        write_document(output, document)
        typer.echo(str(output))
