"""Every registered method honours the Method contract (``kmat_cli.api.Method``).

Parametrised over ``kmat_cli.registry.names("methods")``: built with its default options on the toy world
of the method tests (backbone, three classes, descriptions, the fgw transport), a method gives unit
class embeddings for both modalities and finite logits; a trainable one returns finite scalar loss terms
whose sum sends a gradient to its parameters, and a checkpoint holds only what it learns.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from toyworld import setup

from kmat_cli.api import MODALITIES, Method
from kmat_cli.config import plugin_options
from kmat_cli.registry import get, names

K, D = 3, 8


@pytest.fixture(params=names("methods"))
def method(request: pytest.FixtureRequest) -> Method:
    torch.manual_seed(0)
    return get("methods", request.param)(setup(transport=get("transports", "fgw")()))


def _features(n: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return F.normalize(torch.randn(n, D, generator=g), dim=-1), torch.arange(n) % K


def test_is_a_documented_method_with_data_options(method: Method) -> None:
    assert isinstance(method, Method) and type(method).__doc__
    json.dumps(plugin_options(type(method)))


def test_text_embeddings_and_logits(method: Method) -> None:
    emb = method.text_embeddings()
    assert set(emb) == set(MODALITIES)
    for t in emb.values():
        assert t.shape == (K, D) and t.dtype == torch.float32
        torch.testing.assert_close(t.norm(dim=-1), torch.ones(K))
    features, _ = _features()
    for m in MODALITIES:
        logits = method.logits(features, m)
        assert logits.shape == (len(features), K) and torch.isfinite(logits).all()


def test_losses_are_finite_scalars_with_a_gradient(method: Method) -> None:
    learned = [p for p in method.parameters() if p.requires_grad]
    if not type(method).trainable:
        assert not learned
        return
    features, labels = _features()
    terms = method.losses(features, labels)
    assert terms and all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    sum(terms.values()).backward()
    assert learned and any(p.grad is not None and p.grad.abs().sum() > 0 for p in learned)
    assert set(method.state_dict()) == {n for n, p in method.named_parameters() if p.requires_grad}
