"""Allowed values of run-config keys beyond their types, as data: number ranges, choices, patterns.

:func:`kmat_cli.config.resolve` checks every resolved config against these tables (and
:func:`kmat_cli.train.check_settings` a saved one before it is resumed), so a value no command can run
with (``--set train.eval_batch_size=0``, a negative learning rate, a seed torch cannot take) is a one-line
UsageError before any run folder exists, not a failure after training. Plugin options are checked by the
plugins' constructors, which also run before a run folder is made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from kmat_cli.errors import UsageError, shown

KNOWLEDGE_REGIMES = ("shipped", "partial", "pooled", "generic", "shuffled")  # see kmat_cli.knowledge
SEED_MAX = 2**32 - 1  # numpy's limit; torch's generators and the per-epoch seeds take it too

# key: (least, most); None: unbounded on that side
RANGES: dict[str, tuple[float | None, float | None]] = {
    "train.shots": (1, None),
    "train.seed": (0, SEED_MAX),
    "train.epochs": (0, None),
    "train.batch_size": (1, None),
    "train.lr": (0, None),
    "train.momentum": (0, None),
    "train.weight_decay": (0, None),
    "train.warmup_epochs": (0, None),
    "train.warmup_lr": (0, None),
    "train.augment_views": (0, None),
    "train.eval_batch_size": (1, None),
    "train.num_workers": (0, None),
    "train.threads": (0, None),
    "knowledge.fraction": (0, 1),
    "knowledge.seed": (0, SEED_MAX),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "train.optimizer": ("sgd",),
    "train.scheduler": ("cosine", "constant"),
    "knowledge.regime": KNOWLEDGE_REGIMES,
}
# key: (pattern the whole value must match, what to write instead)
PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "train.device": (re.compile(r"auto|cpu|mps|cuda(:\d+)?"), "auto, cpu, cuda, cuda:N or mps"),
}


def _lookup(cfg: Mapping[str, Any], key: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check(cfg: Mapping[str, Any]) -> None:
    """Raise a one-line UsageError naming the first key of ``cfg`` outside its range, choices or pattern;
    keys absent from ``cfg`` are skipped (their types are checked elsewhere)."""
    for key, (least, most) in RANGES.items():
        found, value = _lookup(cfg, key)
        if not found or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if (least is not None and value < least) or (most is not None and value > most):
            if most is None:
                bound = f"at least {least}"
            elif least is None:
                bound = f"at most {most}"
            else:
                bound = f"between {least} and {most}"
            raise UsageError(f"config key '{key}' must be {bound}, got {shown(value)}")
    for key, allowed in CHOICES.items():
        found, value = _lookup(cfg, key)
        if found and value not in allowed:
            raise UsageError(f"config key '{key}' must be one of {', '.join(allowed)}, got {shown(value)}")
    for key, (pattern, hint) in PATTERNS.items():
        found, value = _lookup(cfg, key)
        if found and not (isinstance(value, str) and pattern.fullmatch(value)):
            raise UsageError(f"config key '{key}' must be {hint}, got {shown(value)}")
