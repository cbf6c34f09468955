"""``kmat describe``'s library: LLM-written class descriptions with provenance.

- :mod:`~kmat_cli.describe.template`: the prompt template (sections, placeholders, chat messages);
- :mod:`~kmat_cli.describe.chat`: the client of OpenAI-compatible chat endpoints (retries, cache);
- :mod:`~kmat_cli.describe.parse`: the items of an answer, tidied and validated;
- :mod:`~kmat_cli.describe.generate`: :func:`describe`, every (class, modality) pair asked concurrently.

The result is a descriptions document (``kmat.descriptions/v1``, :mod:`kmat_cli.descriptions`, which reads,
merges and writes them). The names below are the library's public surface.
"""

from __future__ import annotations

from kmat_cli.describe.chat import DEFAULT_BASE_URL, ChatClient, Endpoint, EndpointUnreachable, RequestCache
from kmat_cli.describe.generate import DEFAULT_MODEL, DescribeResult, Settings, describe
from kmat_cli.describe.parse import Rejected, accept, clean, parse_answer
from kmat_cli.describe.template import DEFAULT_TEMPLATE, PLACEHOLDERS, PromptTemplate, default_template_text
from kmat_cli.descriptions import merge_documents, read_document, task_document, write_document

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "DEFAULT_TEMPLATE",
    "PLACEHOLDERS",
    "ChatClient",
    "DescribeResult",
    "Endpoint",
    "EndpointUnreachable",
    "PromptTemplate",
    "Rejected",
    "RequestCache",
    "Settings",
    "accept",
    "clean",
    "default_template_text",
    "describe",
    "merge_documents",
    "parse_answer",
    "read_document",
    "task_document",
    "write_document",
]
