"""The resolved run config is pinned: for a given input, :func:`kmat_cli.config.build` returns the same keys,
in the same order, with the same values and types. Benchmark cells are keyed by the resolved config
(:func:`kmat_cli.experiments.benchmark.config_identity`), so a change here invalidates every finished
cell; change these dicts only together with a deliberate change of a default or a plugin's options.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from kmat_cli import config

TASK = {"name": "phantom", "seed": 0, "root": None}
BACKBONE = {"name": "phantom", "weights": None}
KMAT = {
    "name": "kmat",
    "n_ctx": 4,
    "init_words": "",
    "csc": True,
    "msc": True,
    "independent": False,
    "anchor": True,
    "transport": True,
    "lambda1": 1.0,
    "lambda2": 1.0,
    "description_template": "{modality}: {description}",
    "agreement": True,
    "agreement_tau": 0.1,
    "agreement_lambda2": 3.0,
}
FGW = {
    "name": "fgw",
    "epsilon": 0.1,
    "alpha": 0.1,
    "max_iter": 100,
    "tol": 1e-06,
    "inner_max_iter": 1000,
    "inner_tol": 1e-07,
    "marginal_tol": 0.001,
    "cost": "sqeuclidean",
    "grad": "envelope",
    "on_fail": "warn",
    "center": True,
    "normalize": False,
    "warm_start": True,
}
KNOWLEDGE = {"regime": "shipped", "fraction": 0.5, "seed": None}
TRAIN = {
    "shots": 16,
    "seed": 1,
    "epochs": 50,
    "batch_size": 4,
    "optimizer": "sgd",
    "lr": 0.0025,
    "momentum": 0.9,
    "weight_decay": 0.0005,
    "scheduler": "cosine",
    "warmup_epochs": 1,
    "warmup_lr": 1e-05,
    "device": "auto",
    "amp": True,
    "augment_views": 0,
    "eval_batch_size": 256,
    "num_workers": 0,
    "threads": 1,
}


def pinned(
    method: dict[str, Any] = KMAT,
    transport: dict[str, Any] = FGW,
    knowledge: dict[str, Any] = KNOWLEDGE,
    train: dict[str, Any] = TRAIN,
) -> dict[str, Any]:
    """The resolved config with these sections (the defaults' where not given), its keys in their order. A
    section given as ``{**TRAIN, "lr": 0.001}`` keeps the order of its keys: a changed value stays in place."""
    return {
        "task": TASK,
        "backbone": BACKBONE,
        "method": method,
        "transport": transport,
        "descriptions": None,
        "knowledge": knowledge,
        "out": "runs",
        "train": train,
    }


CASES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, pinned()),
    (
        {"sets": ["method.name=coop", "transport.name=none", "train.lr=1e-3", "train.shots=4"]},
        pinned(
            method={"name": "coop", "n_ctx": 4, "init_words": "a photo of a", "csc": False},
            transport={"name": "none"},
            train={**TRAIN, "shots": 4, "lr": 0.001},
        ),
    ),
    (
        {
            "flags": {"transport.name": "gw", "train.epochs": 3},
            "sets": ["knowledge.regime=partial", "knowledge.seed=7", "train.device=cpu"],
        },
        pinned(
            transport={k: v for k, v in {**FGW, "name": "gw"}.items() if k != "alpha"},  # gw has no alpha
            knowledge={"regime": "partial", "fraction": 0.5, "seed": 7},
            train={**TRAIN, "epochs": 3, "device": "cpu"},
        ),
    ),
]


@pytest.mark.parametrize(("given", "expected"), CASES, ids=["defaults", "coop-no-transport", "gw-partial"])
def test_resolved_config_is_byte_identical(given: dict[str, Any], expected: dict[str, Any]) -> None:
    resolved = config.build(**given)
    assert json.dumps(resolved) == json.dumps(expected)  # keys, their order, values and types
    assert config.dump(resolved) == config.dump(expected)  # the saved config.yaml
