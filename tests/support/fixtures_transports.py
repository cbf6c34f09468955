"""Fixtures of the transport tests (the truth itself is in ``transport_truth``)."""

from __future__ import annotations

import pytest
from transport_truth import embeddings, pot_solve


@pytest.fixture
def pot_truth():
    return pot_solve


@pytest.fixture
def make_embeddings():
    return embeddings
