"""A run's runtime, set up in one place: torch's CPU threads, the device and the global random generators.

:func:`start` applies the thread policy (:mod:`kmat_cli.threads`) and resolves the device
(:mod:`kmat_cli.devices`) of a ``train`` section before anything is built; :func:`seed_everything` seeds
python's, numpy's and torch's generators, which a method's initial parameters are drawn from
(:func:`kmat_cli.assemble.build_method` seeds them right before it builds the method).
"""

from __future__ import annotations

import random

import numpy as np
import torch

from kmat_cli import threads
from kmat_cli.devices import resolve_device
from kmat_cli.runconfig import TrainConfig


def start(train: TrainConfig, device: str | None = None) -> torch.device:
    """Set torch's CPU threads from ``train.threads`` (:func:`set_threads`) and return the device
    ``device`` names (None: ``train.device``), checked (:func:`kmat_cli.devices.resolve_device`)."""
    set_threads(train.threads)
    return resolve_device(device or train.device)


def set_threads(requested: int) -> int:
    """Set torch's CPU threads by kmat's policy (:func:`kmat_cli.threads.apply`): ``requested`` > 0 that many
    (capped at the usable cores), else ``OMP_NUM_THREADS``, else the cores not busy with other processes."""
    return threads.apply(requested)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
