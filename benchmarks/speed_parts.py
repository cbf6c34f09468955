"""The chest task's parts around a backbone, as ``kmat train`` builds them (task, descriptions, fgw
transport, a method by name), and stand-in cached features of its few-shot set."""

from __future__ import annotations

from typing import Any

import torch

TASK = "chest"


def build_parts(backbone: Any, device: torch.device) -> Any:
    """The chest task, its descriptions and the fgw transport around ``backbone`` (as ``kmat train`` builds
    them, through the registry)."""
    from kmat_cli import assemble, config
    from kmat_cli.registry import get

    cfg = config.defaults()
    cfg["task"] = {"name": TASK}
    cfg["transport"] = {"name": "fgw"}
    task = assemble.build_task(cfg)
    transport = get("transports", "fgw")()
    return assemble.Parts(
        cfg=cfg,
        device=device,
        backbone=backbone,
        task=task,
        descriptions=task.descriptions,
        transport=transport,
    )


def build_method(parts: Any, name: str, seed: int = 1) -> Any:
    """Method ``name`` with its defaults, built as a run builds it (``assemble.build_method``)."""
    from kmat_cli import assemble

    parts.cfg["method"] = {"name": name}
    return assemble.build_method(parts, seed=seed)


def shots(parts: Any, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in cached features of the few-shot set: K x shots normalised random rows and their labels."""
    cfg = parts.cfg["train"]
    k, n = len(parts.task.class_names), int(cfg["shots"])
    g = torch.Generator().manual_seed(seed)
    feats = torch.nn.functional.normalize(torch.randn(k * n, parts.backbone.embed_dim, generator=g), dim=-1)
    return feats.to(device), torch.arange(k).repeat(n).to(device)


def train_cfg(parts: Any, epochs: int) -> dict[str, Any]:
    """The run's ``train`` settings with ``epochs`` in place of the configured number."""
    cfg = dict(parts.cfg["train"])
    cfg["epochs"] = epochs
    return cfg
