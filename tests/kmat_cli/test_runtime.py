"""The runtime of a run, set up in one place: torch's threads and the device from the ``train`` section,
the global generators seeded; a method is built at its seed whatever was drawn before."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from kmat_cli import assemble, config, runtime, threads
from kmat_cli.errors import UsageError
from kmat_cli.runconfig import RunConfig


def test_start_sets_the_threads_and_resolves_the_device() -> None:
    before = torch.get_num_threads()
    try:
        train = RunConfig.from_dict(config.build(sets=["train.threads=1", "train.device=cpu"])).train
        assert runtime.start(train) == torch.device("cpu")
        assert torch.get_num_threads() == 1
        assert runtime.start(train, "auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
        with pytest.raises(UsageError, match="'tpu9' is not a device"):
            runtime.start(train, "tpu9")
        assert runtime.set_threads(2) == threads.plan(2) == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_seed_everything_seeds_python_numpy_and_torch() -> None:
    runtime.seed_everything(7)
    drawn = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(7)
    np.random.seed(7)
    torch.manual_seed(7)
    assert drawn == (random.random(), float(np.random.rand()), float(torch.rand(1)))


def test_a_method_is_built_at_its_seed_whatever_was_drawn_before() -> None:
    cfg = config.build(sets=["method.name=coop", "method.init_words=''", "transport.name=none"])
    parts = assemble.build_parts(cfg, torch.device("cpu"))
    first = assemble.build_method(parts, seed=3).state_dict()
    torch.rand(1000)  # another part drawing from the global generator in between
    again = assemble.build_method(parts, seed=3).state_dict()
    other = assemble.build_method(parts, seed=4).state_dict()
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
