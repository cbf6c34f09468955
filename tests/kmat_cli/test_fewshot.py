"""Few-shot sampling: shots per class drawn deterministically by seed; fewer training images of a class than
shots is a usage error naming the class, before any run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from faults import CLASSES, assert_error, assert_no_runs, cli, custom_task, train_args

from kmat_cli.api import Sample, UsageError
from kmat_cli.fewshot import few_shot

pytestmark = pytest.mark.usefixtures("no_progress")


# -------------------------------------------------------------------------------- fewer images than shots
@pytest.mark.parametrize(("per_class", "shots"), [((3, 3), 4), ((5, 1), 2), ((2, 2), 50)])
def test_fewer_images_than_shots_names_the_class(tmp_path: Path, per_class: tuple, shots: int) -> None:
    folder = tmp_path / "task"
    task = custom_task(folder, per_split={"train": max(per_class)})
    for i in range(per_class[1], max(per_class)):  # thin out the second class
        (folder / "hi" / "train" / CLASSES[1] / f"{i}.png").unlink()
    short = 0 if per_class[0] < shots else 1
    result = cli(*train_args(task, tmp_path / "runs", "--shots", shots))
    assert_error(
        result,
        f"class '{CLASSES[short]}' has {per_class[short]} high-end training images, fewer than {shots}",
    )
    assert_no_runs(tmp_path / "runs")


def test_more_shots_than_the_phantom_world_has(tmp_path: Path) -> None:
    result = cli("train", "--shots", "1000", "--out", tmp_path / "runs", "--no-evaluate")
    assert_error(result, "fewer than 1000 shots")
    assert_no_runs(tmp_path / "runs")


def _pool(counts: list[int]) -> list[Sample]:
    return [
        Sample(path=Path(f"/data/{k}/{i:03d}.png"), label=k) for k, n in enumerate(counts) for i in range(n)
    ]


def test_few_shot_draws_shots_per_class_deterministically_by_seed() -> None:
    pool = _pool([30, 20, 25])
    a = few_shot(pool, ["x", "y", "z"], 16, seed=1)
    assert [s.label for s in a] == [0] * 16 + [1] * 16 + [2] * 16
    assert len(set(a)) == 48
    assert few_shot(list(reversed(pool)), ["x", "y", "z"], 16, seed=1) == a  # input order does not matter
    assert few_shot(pool, ["x", "y", "z"], 16, seed=2) != a


def test_too_few_images_is_a_usage_error_naming_the_class() -> None:
    with pytest.raises(
        UsageError, match=r"class 'y' has 5 high-end training images, fewer than 8 shots"
    ) as exc:
        few_shot(_pool([10, 5, 10]), ["x", "y", "z"], 8, seed=1)
    assert exc.value.exit_code == 2
