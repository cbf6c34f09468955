"""Concurrency: ``kmat train`` runs started at once on one output root get distinct run folders and all
finish; processes filling one feature cache at once leave it consistent (every shard readable, every key's
features equal wherever it is stored, and equal to what one process alone computes)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from faults import (
    KILLPOINT,
    PHANTOM,
    cli,
    env,
    leftovers,
    phantom_root,
    png,
    run_folders,
    status,
    tensors_equal,
)
from safetensors import safe_open

from kmat_cli import runs

pytestmark = pytest.mark.usefixtures("no_progress")


def _cache_table(cache: Path) -> dict[str, list[torch.Tensor]]:
    """Every (content key -> feature rows) stored in a cache; each shard must be a readable safetensors."""
    table: dict[str, list[torch.Tensor]] = {}
    shards = sorted((cache / "features").glob("*/*.safetensors"))
    for shard in shards:
        with safe_open(str(shard), "pt") as f:
            keys = json.loads(f.metadata()["keys"])
            feats = f.get_tensor("features")
        assert feats.shape[0] == len(keys) and torch.isfinite(feats).all()
        for key, row in zip(keys, feats, strict=True):
            table.setdefault(key, []).append(row)
    return table


def test_two_train_runs_started_at_once_share_an_output_root_and_a_cold_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two real `kmat train` processes, same --out, same empty KMAT_CACHE, started together and made to
    compute the same image features at the same moment; then the same run in this process alone, on a
    cache of its own."""
    cache, out, meet = tmp_path / "cache", tmp_path / "runs", tmp_path / "meet"
    meet.mkdir()
    args = ["train", *PHANTOM, "--epochs", "2", "--no-evaluate", "--set", f"task.root={phantom_root()}"]
    head = [sys.executable, KILLPOINT, f"meet:{meet}:2"]  # both compute the same features at once
    procs = [
        subprocess.Popen([*head, *args, "--out", str(out)], env=env(cache), stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    folders = run_folders(out)
    assert [f.name for f in folders] == ["phantom-kmat-s1-1", "phantom-kmat-s1-2"]
    assert all(status(f) == "finished" for f in folders)
    assert not leftovers(tmp_path)
    table = _cache_table(cache)  # what both processes wrote: consistent
    assert len(table) == 16  # 2 shots x 8 classes, one plain view each
    assert all(len(rows) == 2 for rows in table.values()), "both processes computed every feature"
    for key, rows in table.items():
        assert torch.equal(rows[0], rows[1]), f"{key}: the two copies differ"
    json.loads((cache / "file-hashes.json").read_text(encoding="utf-8"))
    monkeypatch.setenv("KMAT_CACHE", str(tmp_path / "alone"))
    result = cli(*args, "--out", tmp_path / "runs-alone")
    assert result.code == 0, result.err
    single = _cache_table(tmp_path / "alone")
    assert set(single) == set(table)
    for key in table:
        assert torch.equal(table[key][0], single[key][0]), key
    [alone] = run_folders(tmp_path / "runs-alone")
    for folder in folders:
        assert not tensors_equal(folder / "prompts.safetensors", alone / "prompts.safetensors")


def test_many_run_folders_claimed_at_once_are_distinct(tmp_path: Path) -> None:
    """Sixteen threads claiming run folders of the same task and method at the same instant."""
    barrier, claimed = threading.Barrier(16), []

    def claim() -> None:
        barrier.wait()
        claimed.append(runs.create(tmp_path, "train", "phantom", "kmat").path.name)

    threads = [threading.Thread(target=claim) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed, key=lambda n: int(n.rsplit("-", 1)[1])) == [
        f"phantom-kmat-{i}" for i in range(1, 17)
    ]


@pytest.mark.parametrize("views", [0, 2])
def test_threads_filling_one_cache_at_once(tmp_path: Path, views: int) -> None:
    """Four threads computing overlapping sets of features into one empty cache at once."""
    from kmat_cli.features import image_features
    from kmat_cli.registry import get

    backbone = get("backbones", "phantom")(vision_only=True)
    images = [tmp_path / "img" / f"{i}.png" for i in range(12)]
    for i, p in enumerate(images):
        png(p, i)
    subsets = [images[0:8], images[4:12], images[::2], images]
    barrier, results, errors = threading.Barrier(4), {}, []

    def fill(i: int) -> None:
        try:
            barrier.wait()
            results[i] = image_features(
                backbone, subsets[i], cache_dir=tmp_path / "c", views=views, progress=False
            )
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=fill, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    table = _cache_table(tmp_path / "c")
    assert len(table) == 12 * (1 + views)
    for key, rows in table.items():
        assert all(torch.equal(rows[0], r) for r in rows[1:]), f"{key}: copies differ"
    again = image_features(backbone, images, cache_dir=tmp_path / "c", views=views, progress=False)
    for i, subset in enumerate(subsets):
        index = [images.index(p) for p in subset]
        torch.testing.assert_close(results[i], again[index], rtol=0, atol=1e-6)
