"""Every registered task honours the Task contract (``kmat_cli.api.Task``).

Parametrised over ``kmat_cli.registry.names("tasks")``: the task lists distinct class names and words for
both modalities, ships descriptions for every class and modality, recommends a run config that is data,
and answers ``split`` with labelled samples or, where its data is not there, a one-line ``UsageError``.
Tasks that read prepared data are built on an empty root; the ``yaml`` task on a tiny task file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kmat_cli.api import MODALITIES, SPLITS, Sample, Task, UsageError
from kmat_cli.config import plugin_options
from kmat_cli.registry import get, names

LIGHT = [n for n in names("tasks") if n != "phantom"]  # the phantom world renders 1,500 images first


def _build(name: str, yaml_task_file: Path, tmp_path: Path) -> Task:
    cls = get("tasks", name)
    if name == "yaml":
        return cls(path=str(yaml_task_file))
    if "root" in plugin_options(cls):
        return cls(root=str(tmp_path / "data"))
    return cls()


@pytest.mark.parametrize("name", names("tasks"))
def test_names_modalities_descriptions_and_config(name: str, yaml_task_file: Path, tmp_path: Path) -> None:
    task = _build(name, yaml_task_file, tmp_path)
    assert isinstance(task, Task) and type(task).__doc__
    assert task.class_names and len(set(task.class_names)) == len(task.class_names)
    assert all(isinstance(c, str) and c.strip() == c and c for c in task.class_names)
    assert set(task.modalities) == set(MODALITIES) and all(w.strip() for w in task.modalities.values())
    desc = task.descriptions
    for m in MODALITIES:
        assert set(desc[m]) >= set(task.class_names), m
        assert all(
            desc[m][c] and all(isinstance(t, str) and t.strip() for t in desc[m][c]) for c in task.class_names
        )
    json.dumps(type(task).config)  # the recommended run-config layer is data


@pytest.mark.parametrize("name", LIGHT)
def test_split_gives_samples_or_one_line_error(name: str, yaml_task_file: Path, tmp_path: Path) -> None:
    task = _build(name, yaml_task_file, tmp_path)
    for m in MODALITIES:
        for split in SPLITS:
            try:
                samples = task.split(m, split)
            except UsageError as exc:  # no data prepared under the empty root
                assert "\n" not in str(exc) and str(exc), (m, split)
                continue
            assert samples and all(isinstance(s, Sample) for s in samples)
            assert all(0 <= s.label < len(task.class_names) and Path(s.path).is_file() for s in samples)
    with pytest.raises(UsageError):
        task.split("mid", "train")


@pytest.mark.slow
def test_phantom_splits_are_labelled_images(tmp_path: Path) -> None:
    task = get("tasks", "phantom")(root=str(tmp_path))
    for m in MODALITIES:
        samples = task.split(m, "val")
        assert samples and all(0 <= s.label < len(task.class_names) and s.path.is_file() for s in samples)
