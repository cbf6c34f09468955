"""kmat's plugin API: everything a plugin of each kind imports from kmat, and nothing else.

Plugins (``backbones/``, ``transports/``, ``tasks/``, methods, third-party packages) import this module
and nothing else from kmat. The core reaches plugins only through :mod:`kmat_cli.registry`.

What each kind needs:

- a transport: :class:`Transport` (``T(X_hi, X_lo)`` a differentiable scalar, ``T.plan(...)``);
- a backbone: :class:`Backbone`, :func:`make_cache_folder` (its weights cache);
- a task: :class:`Task`, :class:`Sample`, ``MODALITIES``, ``SPLITS``, :func:`load_descriptions` (the one
  reader of the ``kmat.descriptions/v1`` format, :mod:`kmat_cli.descriptions`);
- every kind reading a data file: :func:`read_json`, :func:`read_yaml`, :func:`parse_json`,
  :func:`parse_yaml` (:mod:`kmat_cli.datafiles`: bounded, strict, one-line :class:`DataError`,
  :class:`MissingFile` when the file does not exist);
- a method: :class:`Method` and :class:`MethodSetup` (:mod:`kmat_cli.methods.base`) and
  :class:`PromptLearner` (:mod:`kmat_cli.prompts`); these three import torch, so they are loaded on
  first use and ``import kmat_cli.api`` stays cheap;
- every kind writing a file: :func:`write_bytes`, :func:`write_text`, :func:`write_with` (``writer(tmp)``
  then moved into place), :mod:`kmat_cli.atomic`'s writers: a reader sees the old file or the whole new one,
  a link at the destination is replaced, never written through, a refused write is one line naming the file;
- every kind: :class:`UsageError` (bad input, exit code 2), :class:`RuntimeFailure`, :class:`KmatError`,
  :func:`warn` (one ``kmat: warning: ...`` line on stderr).

Configuration as data: a plugin's options are the keyword-only arguments of its constructor, with their
defaults. They appear in the run config as a section ``{name: <plugin>, <option>: <value>, ...}``
(``backbone``, ``transport``, ``task``, ``method``) and are validated against that signature, so a
misspelt option is rejected with a suggestion instead of being ignored. Their ranges are the plugin
class's ``limits`` (``{"lambda1": (0, 1e6), "epsilon": (Above(0), None)}``; :class:`Above` an exclusive
least, ``SEED_MAX`` the largest seed; :mod:`kmat_cli.limits`), checked with every config before a run
folder exists. Messages show user text through :func:`printable` (control characters escaped);
:func:`unprintable` finds the first one, for readers that refuse them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from kmat_cli.atomic import write_bytes, write_text, write_with
from kmat_cli.contracts import MODALITIES, SPLITS, Backbone, Sample, Task, Transport
from kmat_cli.datafiles import DataError, MissingFile, parse_json, parse_yaml, read_json, read_yaml
from kmat_cli.descriptions import DESCRIPTIONS_FORMAT, load_descriptions
from kmat_cli.envinfo import make_cache_folder
from kmat_cli.errors import KmatError, RuntimeFailure, UsageError, printable, unprintable
from kmat_cli.limits import SEED_MAX, Above, Range, outside
from kmat_cli.progress import warn

if TYPE_CHECKING:
    from kmat_cli.methods.base import Method, MethodSetup
    from kmat_cli.prompts import PromptLearner

__all__ = [
    "DESCRIPTIONS_FORMAT",
    "MODALITIES",
    "SEED_MAX",
    "SPLITS",
    "Above",
    "Backbone",
    "DataError",
    "KmatError",
    "Method",
    "MethodSetup",
    "MissingFile",
    "PromptLearner",
    "Range",
    "RuntimeFailure",
    "Sample",
    "Task",
    "Transport",
    "UsageError",
    "load_descriptions",
    "make_cache_folder",
    "outside",
    "parse_json",
    "parse_yaml",
    "printable",
    "read_json",
    "read_yaml",
    "unprintable",
    "warn",
    "write_bytes",
    "write_text",
    "write_with",
]

_ON_FIRST_USE = {  # name -> module: the exports that import torch
    "Method": "kmat_cli.methods.base",
    "MethodSetup": "kmat_cli.methods.base",
    "PromptLearner": "kmat_cli.prompts",
}


def __getattr__(name: str) -> Any:
    """The torch-based exports (``Method``, ``MethodSetup``, ``PromptLearner``), imported on first use."""
    if name in _ON_FIRST_USE:
        value = getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
