"""The agreement criterion on constructed geometries, and how K-MaT turns it into its weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kmat_cli.methods.agreement import class_agreement, disagreement


def geometry(k: int = 6, d: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """High-end class points, and low-end ones = the same directions shifted by a common modality gap plus
    a little noise (what agreeing descriptions look like)."""
    g = torch.Generator().manual_seed(seed)
    hi = F.normalize(torch.randn(k, d, generator=g), dim=-1)
    gap = 3 * torch.randn(d, generator=g)
    lo = F.normalize(hi + gap + 0.05 * torch.randn(k, d, generator=g), dim=-1)
    return lo, hi


def test_agreeing_descriptions_agree_whatever_the_modality_gap() -> None:
    lo, hi = geometry()
    a = class_agreement(lo, hi)
    assert torch.all(a > 0.9) and disagreement(a) < 0.1


def test_permuted_descriptions_disagree() -> None:
    lo, hi = geometry()
    perm = torch.tensor([1, 2, 0, 4, 5, 3])
    a = class_agreement(lo[perm], hi)
    assert torch.all(a < 0.1) and disagreement(a) == pytest.approx(1.0)


def test_collapsed_descriptions_sit_at_chance() -> None:
    lo, hi = geometry()
    same = lo[:1].expand_as(lo)  # every class the same text
    a = class_agreement(same, hi)
    torch.testing.assert_close(a, torch.full((6,), 1 / 6))
    assert disagreement(a) == pytest.approx(1.0)


def test_a_pair_sharing_one_text_loses_half_its_certainty() -> None:
    lo, hi = geometry()
    pooled = lo.clone()
    pooled[0] = pooled[1] = F.normalize(lo[0] + lo[1], dim=-1)
    a = class_agreement(pooled, hi)
    assert torch.all(a[2:] > 0.9)
    assert a[0] + a[1] < 1.5 and torch.all(a[:2] <= 0.76)
    assert 0 < disagreement(a) < 1


def test_kmat_splits_its_low_end_anchor_and_scales_lambda2_by_the_disagreement() -> None:
    from toyworld import setup

    from kmat_cli import registry

    s = setup(transport=registry.get("transports", "fgw")())
    m = registry.get("methods", "kmat")(s, lambda2=2.0, agreement_lambda2=3.0)  # agreement: on by default
    p = m.prototypes
    a = class_agreement(p[1], p[0])
    torch.testing.assert_close(m.agreement, a)
    assert m.lambda2 == pytest.approx(2.0 * 3.0 * disagreement(a))
    g = torch.Generator().manual_seed(3)
    t = {"hi": F.normalize(torch.randn(p[0].shape, generator=g), dim=-1), "lo": p[1] * 0.5 + 0.1}
    hi = sum((t["hi"][k] - p[0][k]).norm() for k in range(3)) / 3
    where = (t["lo"].sum(0) - p[1].sum(0)).norm() / 3
    offsets = [((t["lo"][k] - t["lo"].sum(0) / 3) - (p[1][k] - p[1].sum(0) / 3)).norm() for k in range(3)]
    by_hand = 0.5 * (hi + where + sum(a[k] * offsets[k] for k in range(3)) / 3)
    torch.testing.assert_close(m.anchor_loss(t), by_hand)
    # a common shift of the low-end prompts moves only the location term; the offsets term ignores it
    shifted = {"hi": t["hi"], "lo": t["lo"] + 0.3}
    moved = 0.5 * (
        hi + (shifted["lo"].mean(0) - p[1].mean(0)).norm() + sum(a[k] * offsets[k] for k in range(3)) / 3
    )
    torch.testing.assert_close(m.anchor_loss(shifted), moved)
    assert m.text_checks()["agreement"] == pytest.approx(a.tolist())


def test_without_the_rule_the_anchor_is_the_plain_mean_distance_and_lambda2_is_kept() -> None:
    from toyworld import setup

    from kmat_cli import registry

    s = setup(transport=registry.get("transports", "fgw")())
    m = registry.get("methods", "kmat")(s, agreement=False, lambda2=2.0)
    p = m.prototypes
    assert m.agreement is None and m.lambda2 == 2.0
    t = {"hi": p[0] * 0.5, "lo": p[1] * 0.25}
    by_hand = (p[0] * 0.5 - p[0]).norm(dim=-1).sum() + (p[1] * 0.25 - p[1]).norm(dim=-1).sum()
    torch.testing.assert_close(m.anchor_loss(t), by_hand / 6)


def test_transport_only_kmat_needs_no_descriptions_and_keeps_its_lambda2() -> None:
    """The rule reads the descriptions; without any, a K-MaT with the anchor off trains on its lambda2 as
    given, and with the anchor on the missing descriptions are the one-line error they always were."""
    from toyworld import setup

    from kmat_cli import registry
    from kmat_cli.errors import UsageError

    kmat = registry.get("methods", "kmat")
    bare = setup(transport=registry.get("transports", "fgw")(), descriptions=None)
    m = kmat(bare, anchor=False, lambda2=2.0)
    assert m.agreement is None and m.lambda2 == 2.0 and m.use_transport
    with pytest.raises(UsageError, match="needs class descriptions"):
        kmat(bare)
