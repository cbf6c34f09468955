"""Every method: trains (loss falls), its loss terms equal hand-written formulas, K-MaT's gradient flow."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from toyworld import ToyBackbone, setup

from kmat_cli import registry
from kmat_cli.config import plugin_options
from kmat_cli.methods.base import Method

METHODS = ["zeroshot", "descriptions", "coop", "cocoop", "kgcoop", "biomedcoop", "kmat"]


def features(n_per_class: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable (N, 8) features: one direction per class plus noise."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, 8, generator=g)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    return F.normalize(centres[labels] + 0.3 * torch.randn(len(labels), 8, generator=g), dim=-1), labels


def build(name: str, **options) -> Method:
    torch.manual_seed(0)
    transport = registry.get("transports", "fgw")()
    return registry.get("methods", name)(setup(transport=transport), **options)


@pytest.mark.parametrize("name", METHODS)
def test_every_method_is_registered_configurable_and_gives_both_modalities(name: str) -> None:
    cls = registry.get("methods", name)
    assert issubclass(cls, Method)
    options = plugin_options(cls)
    assert "setup" not in options and all(not isinstance(v, torch.Tensor) for v in options.values())
    method = build(name)
    emb = method.text_embeddings()
    assert set(emb) == {"hi", "lo"}
    for t in emb.values():
        assert t.shape == (3, 8) and t.dtype == torch.float32
        torch.testing.assert_close(t.norm(dim=-1), torch.ones(3))


@pytest.mark.parametrize("name", [m for m in METHODS if m not in ("zeroshot", "descriptions")])
def test_training_loss_falls(name: str) -> None:
    method = build(name)
    f, y = features()
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.2, momentum=0.9)
    totals = []
    for _ in range(40):
        loss = sum(method.losses(f, y).values())
        totals.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert totals[-1] < totals[0] and max(totals[-5:]) < min(totals[:5]), totals


def test_zeroshot_is_the_template_through_encode_text() -> None:
    method = build("zeroshot")
    assert not method.trainable and not list(method.parameters())
    bb = method.backbone
    want = bb.encode_text(
        ["a sharp scan image of alpha.", "a sharp scan image of beta.", "a sharp scan image of gamma."]
    )
    torch.testing.assert_close(method.text_embeddings()["hi"], want)
    want_lo = bb.encode_text([f"a blurry photo image of {c}." for c in ["alpha", "beta", "gamma"]])
    torch.testing.assert_close(method.text_embeddings()["lo"], want_lo)


def test_coop_family_scores_both_modalities_with_the_same_embeddings() -> None:
    for name in ("coop", "kgcoop", "biomedcoop", "cocoop"):
        emb = build(name).text_embeddings()
        assert torch.equal(emb["hi"], emb["lo"])


def test_kmat_ce_only_equals_hand_written_cross_entropy() -> None:
    method = build("kmat", csc=False, msc=False, anchor=False, transport=False, lambda1=0.0, lambda2=0.0)
    f, y = features()
    terms = method.losses(f, y)
    assert list(terms) == ["ce"]
    terms["ce"].backward()
    grad = method.prompts.ctx_shared.grad.clone()

    # by hand: one shared context, prompts "<hi words> <class>.", CE of s * cos
    ctx = method.prompts.ctx_shared.detach().clone().requires_grad_(True)
    bb: ToyBackbone = method.backbone
    texts = [f"sharp scan {c}." for c in ["alpha", "beta", "gamma"]]
    t = bb.encode_prompts(ctx.unsqueeze(0).expand(3, -1, -1), texts)
    ce = F.cross_entropy(bb.logit_scale * F.normalize(f, dim=-1) @ t.t(), y)
    ce.backward()
    torch.testing.assert_close(terms["ce"], ce, rtol=0, atol=1e-7)
    torch.testing.assert_close(grad, ctx.grad, rtol=1e-6, atol=1e-9)


def test_kmat_anchor_is_mean_euclidean_distance_to_description_prototypes() -> None:
    method = build(
        "kmat", transport=False, lambda1=2.0, description_template="{description}", agreement=False
    )  # the plain anchor (tests/kmat_cli/methods/test_agreement.py: its split form under the agreement rule)
    f, y = features()
    terms = method.losses(f, y)
    bb = method.backbone
    desc = setup().descriptions
    with torch.no_grad():
        emb = method.text_embeddings()
        dists = []
        for m in ("hi", "lo"):
            for k, c in enumerate(["alpha", "beta", "gamma"]):
                e = F.normalize(bb.encode_text(desc[m][c]), dim=-1)
                p = F.normalize(e.mean(0), dim=-1)
                dists.append(torch.linalg.vector_norm(emb[m][k] - p))
    torch.testing.assert_close(terms["anchor"], 2.0 * torch.stack(dists).mean(), rtol=1e-6, atol=1e-7)


def test_kmat_transport_term_is_the_transport_of_detached_hi_and_lo() -> None:
    method = build("kmat", anchor=False, lambda2=3.0, agreement=False)  # the transport at a fixed weight
    f, y = features()
    terms = method.losses(f, y)
    with torch.no_grad():
        emb = method.text_embeddings()
        want = 3.0 * registry.get("transports", "fgw")()(emb["hi"], emb["lo"])
    torch.testing.assert_close(terms["transport"], want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("transport", ["fgw", "wasserstein", "gw"])
def test_transport_gradients_reach_only_the_low_end_context(transport: str) -> None:
    torch.manual_seed(0)
    t = registry.get("transports", transport)()
    method = registry.get("methods", "kmat")(setup(transport=t), anchor=False, agreement=False)
    f, y = features()
    method.losses(f, y)["transport"].backward()
    pl = method.prompts
    assert torch.count_nonzero(pl.ctx_modality.grad[0]) == 0  # M_hi: no gradient
    assert torch.count_nonzero(pl.ctx_modality.grad[1]) > 0  # M_lo: gradient
    assert torch.count_nonzero(pl.ctx_class.grad) > 0  # C_k is shared with the low-end prompts (METHOD.md)
    assert all(p.grad is None for p in method.backbone.model.parameters())

    torch.manual_seed(0)
    method = registry.get("methods", "kmat")(
        setup(transport=t), anchor=False, independent=True, agreement=False
    )
    method.losses(f, y)["transport"].backward()
    grad = method.prompts.ctx_independent.grad
    assert torch.count_nonzero(grad[0]) == 0 and torch.count_nonzero(grad[1]) > 0


@pytest.mark.parametrize("independent, moves_hi", [(False, True), (True, False)])
def test_a_transport_step_moves_the_high_end_prompts_through_the_shared_class_context(
    independent: bool, moves_hi: bool
) -> None:
    """docs/method.md: T sees stop_grad(t_hi), yet with CSC the shared C_k carries its gradient to t_hi."""
    torch.manual_seed(0)
    t = registry.get("transports", "fgw")()
    kmat = registry.get("methods", "kmat")
    method = kmat(setup(transport=t), anchor=False, independent=independent, agreement=False)
    f, y = features()
    before = {m: e.detach().clone() for m, e in method.text_embeddings().items()}
    opt = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=1.0)
    method.losses(f, y)["transport"].backward()
    opt.step()
    after = method.text_embeddings()
    assert not torch.allclose(after["lo"], before["lo"])
    assert (not torch.allclose(after["hi"], before["hi"])) == moves_hi


def test_anchor_training_leaves_token_embeddings_and_tower_untouched() -> None:
    method = build("kmat", transport=False, lambda1=5.0)
    bb = method.backbone
    before = {k: v.clone() for k, v in bb.model.state_dict().items()}
    words = {w: bb.token_embeddings(w) for w in ["sharp scan", "blurry photo", "alpha", "beta", "gamma"]}
    f, y = features()
    opt = torch.optim.SGD(method.parameters(), lr=0.5, momentum=0.9)
    for _ in range(5):
        loss = method.losses(f, y)["anchor"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(v, bb.model.state_dict()[k]) for k, v in before.items())
    assert all(torch.equal(v, bb.token_embeddings(w)) for w, v in words.items())
    assert all(not p.requires_grad and p.grad is None for p in bb.model.parameters())


def test_kgcoop_term_is_one_minus_mean_cosine_to_hand_crafted_prompts() -> None:
    method = build("kgcoop", weight=8.0)
    f, y = features()
    terms = method.losses(f, y)
    with torch.no_grad():
        t = method.text_embeddings()["hi"]
        zs = method.backbone.encode_text([f"a photo of a {c}." for c in ["alpha", "beta", "gamma"]])
        want = 8.0 * (1 - F.cosine_similarity(t, zs).mean())
    torch.testing.assert_close(terms["kg"], want)


def test_biomedcoop_terms_match_their_formulas() -> None:
    method = build("biomedcoop", lambda_sccm=2.0, lambda_kdsp=3.0, tau=1.5)
    f, y = features()
    terms = method.losses(f, y)
    bb, s = method.backbone, method.logit_scale
    desc = setup().descriptions["hi"]
    with torch.no_grad():
        t = method.text_embeddings()["hi"]
        e = torch.stack([F.normalize(bb.encode_text(desc[c]), dim=-1) for c in ["alpha", "beta", "gamma"]])
        mean = F.normalize(e.mean(1), dim=-1)
        torch.testing.assert_close(terms["sccm"], 2.0 * ((t - mean) ** 2).mean())
        fn = F.normalize(f, dim=-1)
        keep = method.selected(fn)
        teacher = s * fn @ F.normalize(e[:, keep].mean(1), dim=-1).t()
        p_t, p_s = teacher.softmax(-1), (s * fn @ t.t()).softmax(-1)
        kl = (p_t * (p_t.log() - p_s.log())).sum() / p_s.numel()
        torch.testing.assert_close(terms["kdsp"], 3.0 * kl, rtol=1e-5, atol=1e-7)


def test_biomedcoop_teacher_drops_outlier_descriptions() -> None:
    method = build("biomedcoop", tau=1.5)
    f, _ = features()
    fn = F.normalize(f, dim=-1)
    g = torch.Generator().manual_seed(1)
    # 8 descriptions per class: 7 ordinary ones, and index 3 aligned with the images (an outlier score)
    desc = F.normalize(torch.randn(3, 8, 8, generator=g) * 0.1 + torch.randn(3, 1, 8, generator=g), dim=-1)
    desc[:, 3] = F.normalize(fn.mean(0), dim=-1)
    method.desc = desc
    s = (method.logit_scale * torch.einsum("bd,knd->bkn", fn, desc)).max(1).values.mean(0)
    z = (s - s.median()) / (s - s.median()).abs().median()
    want = ((z - z.mean()) / z.std()).abs() <= 1.5
    keep = method.selected(fn)
    assert torch.equal(keep, want)
    assert not keep[3] and int(keep.sum()) >= 5


def test_cocoop_conditions_on_each_image_and_exports_the_zero_bias_prompts() -> None:
    method = build("cocoop")
    f, _ = features()
    with torch.no_grad():
        for layer in (method.meta_net[2].weight, method.meta_net[2].bias):
            layer.zero_()  # zero meta-net bias: per-image logits equal the exported embeddings' logits
        plain = method.backbone.logit_scale * F.normalize(f, dim=-1) @ method.text_embeddings()["lo"].t()
        torch.testing.assert_close(method.logits(f, "lo"), plain, rtol=1e-5, atol=1e-5)
        method.meta_net[2].bias.fill_(0.5)
        method.meta_net[2].weight.normal_(0, 1.0)
        assert not torch.allclose(method.logits(f, "lo"), plain, atol=1e-3)
        # chunking does not change the result
        method.chunk_size = 5
        a = method.logits(f, "lo")
        method.chunk_size = 64
        torch.testing.assert_close(a, method.logits(f, "lo"))
