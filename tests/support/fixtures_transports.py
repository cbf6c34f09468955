"""Fixtures of the transport tests (the truth itself is in ``transport_truth``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def pot_truth():
    from transport_truth import pot_solve

    return pot_solve


@pytest.fixture
def make_embeddings():
    from transport_truth import embeddings

    return embeddings
