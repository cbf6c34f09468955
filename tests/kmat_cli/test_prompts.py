"""The prompt learner: context layouts (unified, CSC, MSC, CSC+MSC, independent), init, encoding."""

from __future__ import annotations

import pytest
import torch
from toyworld import ToyBackbone

from kmat_cli.prompts import PromptLearner

TEXTS = {"hi": ["sharp scan alpha.", "sharp scan beta."], "lo": ["blurry photo alpha.", "blurry photo beta."]}


@pytest.fixture(scope="module")
def backbone() -> ToyBackbone:
    return ToyBackbone()


def test_csc_msc_layout_is_modality_then_class_context(backbone: ToyBackbone) -> None:
    torch.manual_seed(0)
    pl = PromptLearner(backbone, TEXTS, n_ctx=3, csc=True, msc=True)
    ctx = pl.contexts()
    assert ctx.shape == (2, 2, 6, 16) and pl.context_length == 6
    for g in range(2):
        for k in range(2):
            assert torch.equal(ctx[g, k, :3], pl.ctx_modality[g])  # M_m first
            assert torch.equal(ctx[g, k, 3:], pl.ctx_class[k])  # then C_k, shared by both modalities
    # the embeddings are exactly the backbone's encode_prompts of [M_m; C_k] followed by the fixed words
    out = pl()
    for g, name in enumerate(["hi", "lo"]):
        want = backbone.encode_prompts(ctx[g], TEXTS[name])
        torch.testing.assert_close(out[name], want, rtol=0, atol=0)


def test_switches_give_the_documented_parameter_sets(backbone: ToyBackbone) -> None:
    def names(**kw) -> dict[str, tuple[int, ...]]:
        return {
            n: tuple(p.shape) for n, p in PromptLearner(backbone, TEXTS, n_ctx=4, **kw).named_parameters()
        }

    assert names() == {"ctx_shared": (4, 16)}  # both off: one shared context of length L
    assert names(csc=True) == {"ctx_class": (2, 4, 16)}
    assert names(msc=True) == {"ctx_modality": (2, 4, 16), "ctx_shared": (4, 16)}  # CSC off: shared C
    assert names(csc=True, msc=True) == {"ctx_modality": (2, 4, 16), "ctx_class": (2, 4, 16)}
    assert names(independent=True, csc=True, msc=True) == {"ctx_independent": (2, 2, 4, 16)}


def test_unified_context_is_identical_for_every_prompt(backbone: ToyBackbone) -> None:
    pl = PromptLearner(backbone, TEXTS, n_ctx=2)
    ctx = pl.contexts()
    assert all(torch.equal(ctx[g, k], pl.ctx_shared) for g in range(2) for k in range(2))


def test_random_init_is_normal_with_std_002(backbone: ToyBackbone) -> None:
    torch.manual_seed(0)
    pl = PromptLearner(backbone, {"all": ["x."] * 200}, n_ctx=4, csc=True)
    values = pl.ctx_class.detach().flatten()
    assert abs(float(values.std()) - 0.02) < 0.001 and abs(float(values.mean())) < 0.001


def test_init_from_words_copies_their_token_embeddings(backbone: ToyBackbone) -> None:
    pl = PromptLearner(backbone, TEXTS, n_ctx=7, csc=True, init_words="a photo of a")
    assert pl.n_ctx == 4  # L becomes the number of tokens of the init words
    want = backbone.token_embeddings("a photo of a")
    for k in range(2):
        assert torch.equal(pl.ctx_class[k].detach(), want)
    pl.ctx_class.data[0] += 1  # copies, not views of the frozen table
    assert torch.equal(backbone.token_embeddings("a photo of a"), want)


def test_gradients_reach_the_context_only(backbone: ToyBackbone) -> None:
    pl = PromptLearner(backbone, TEXTS, n_ctx=2, csc=True, msc=True)
    out = pl()
    (out["hi"].sum() + out["lo"][0].sum()).backward()
    assert pl.ctx_class.grad is not None and pl.ctx_modality.grad is not None
    assert all(p.grad is None for p in backbone.model.parameters())
