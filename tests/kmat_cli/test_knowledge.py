"""Knowledge regimes: deterministic per seed, high end untouched, each regime's defining property, and the
config key through `kmat train` into config.yaml."""

from __future__ import annotations

import pytest
import yaml

from kmat_cli import config, knowledge
from kmat_cli.errors import UsageError

NAMES = [f"c{i}" for i in range(8)]
PAIRS = [["c0", "c1"], ["c2", "c3"], ["c4", "c5"], ["c6", "c7"]]
DESC = {
    "hi": {c: [f"sharp {c} one", f"sharp {c} two"] for c in NAMES},
    "lo": {c: [f"faint {c} one", f"faint {c} two", f"faint {c} three"] for c in NAMES},
}


def degrade(regime: str, seed: int = 1, groups=PAIRS, fraction: float = 0.5):
    return knowledge.degrade(DESC, NAMES, regime=regime, seed=seed, class_groups=groups, fraction=fraction)


@pytest.mark.parametrize("regime", knowledge.REGIMES)
def test_same_seed_same_texts_and_high_end_untouched(regime: str) -> None:
    a, b = degrade(regime, 7), degrade(regime, 7)
    assert a == b
    assert a["hi"] == DESC["hi"]


@pytest.mark.parametrize("regime", ["partial", "shuffled"])
def test_other_seeds_draw_other_degradations(regime: str) -> None:
    drawn = {repr(sorted(degrade(regime, s)["lo"].items())) for s in range(12)}
    assert len(drawn) > 1


def test_shipped_is_unchanged() -> None:
    assert degrade("shipped") == DESC


def test_generic_gives_every_class_the_generic_sentences() -> None:
    lo = degrade("generic")["lo"]
    assert all(lo[c] == list(knowledge.GENERIC) for c in NAMES)
    assert not any(c in t for t in knowledge.GENERIC for c in NAMES)


@pytest.mark.parametrize("seed", range(6))
def test_shuffled_is_a_derangement_of_the_class_texts(seed: int) -> None:
    lo = degrade("shuffled", seed)["lo"]
    sources = [next(d for d in NAMES if DESC["lo"][d] == lo[c]) for c in NAMES]
    assert sorted(sources) == NAMES and all(s != c for s, c in zip(sources, NAMES, strict=True))


@pytest.mark.parametrize("seed", range(6))
def test_partial_takes_one_class_of_every_pair_at_one_half(seed: int) -> None:
    lo = degrade("partial", seed)["lo"]
    lost = [c for c in NAMES if lo[c] == list(knowledge.GENERIC)]
    assert len(lost) == 4 and all(sum(c in g for c in lost) == 1 for g in PAIRS)
    assert all(lo[c] == DESC["lo"][c] for c in NAMES if c not in lost)


def test_partial_fraction_counts_classes() -> None:
    for fraction, n in ((0.0, 0), (0.25, 2), (1.0, 8)):
        lo = degrade("partial", fraction=fraction)["lo"]
        assert sum(lo[c] == list(knowledge.GENERIC) for c in NAMES) == n


def test_pooled_gives_each_group_the_texts_of_all_its_members() -> None:
    lo = degrade("pooled")["lo"]
    for a, b in PAIRS:
        assert lo[a] == lo[b] == DESC["lo"][a] + DESC["lo"][b]


def test_without_declared_groups_classes_are_paired_by_seed() -> None:
    groups = knowledge.groups(NAMES[:5], None, seed=3)
    assert sorted(c for g in groups for c in g) == NAMES[:5] and sorted(map(len, groups)) == [2, 3]
    assert groups == knowledge.groups(NAMES[:5], None, seed=3)
    with pytest.raises(UsageError, match="class_groups"):
        knowledge.groups(NAMES, [["c0"]], seed=0)


def test_config_key_is_validated_and_defaults_to_shipped() -> None:
    assert config.build()["knowledge"] == {"regime": "shipped", "fraction": 0.5, "seed": None}
    with pytest.raises(UsageError, match=r"knowledge\.regime"):
        config.build(sets=["knowledge.regime=vague"])
    with pytest.raises(UsageError, match=r"knowledge\.fraction"):
        config.build(sets=["knowledge.fraction=1.5"])


def test_kmat_train_set_regime_is_saved_and_changes_only_the_low_end_prototypes(tmp_path) -> None:
    from typer.testing import CliRunner

    from kmat_cli.app import app

    out = tmp_path / "runs"
    args = ["train", "--task", "phantom", "--method", "descriptions", "--out", str(out)]
    r = CliRunner().invoke(app, [*args, "--set", "knowledge.regime=generic"])
    assert r.exit_code == 0, r.output
    (cfg_file,) = out.glob("train/*/config.yaml")
    assert yaml.safe_load(cfg_file.read_text())["knowledge"]["regime"] == "generic"
    (metrics_file,) = out.glob("train/*/metrics.json")
    # every class scored by one prototype: the low end predicts a single class
    lo = yaml.safe_load(metrics_file.read_text())["lo"]
    assert sum(1 for row in zip(*lo["confusion"], strict=True) if sum(row) > 0) == 1
