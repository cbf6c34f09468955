"""The image-feature cache: hits, misses when a key changes, views, concurrency, the content-hash memo."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from counting_backbone import CountingBackbone, direct, write_images
from PIL import Image

from kmat_cli import features
from kmat_cli.api import UsageError
from kmat_cli.features import image_features
from kmat_cli.images import load_image


@pytest.mark.spawns
def test_second_run_hits_the_cache(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", 7)
    b = CountingBackbone()
    first = image_features(b, paths, batch_size=3, cache_dir=tmp_path / "c", progress=False)
    assert b.calls == 7 and first.shape == (7, 6) and first.dtype == torch.float32
    assert torch.allclose(first, direct(b, paths), atol=1e-6)
    assert torch.allclose(first.norm(dim=-1), torch.ones(7))
    b.calls = 0
    again = image_features(CountingBackbone(), paths, cache_dir=tmp_path / "c", progress=False)
    assert torch.equal(again, first)
    fresh = CountingBackbone()
    image_features(fresh, list(reversed(paths)) + paths[:2], cache_dir=tmp_path / "c", progress=False)
    assert fresh.calls == 0  # order and duplicates do not matter


def test_changed_file_misses_only_itself(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", 5)
    cache = tmp_path / "c"
    before = image_features(CountingBackbone(), paths, cache_dir=cache, progress=False)
    Image.fromarray(np.full((20, 30, 3), 200, dtype=np.uint8)).save(paths[2])
    st = paths[2].stat()
    os.utime(paths[2], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # coarse-mtime filesystems
    b = CountingBackbone()
    after = image_features(b, paths, cache_dir=cache, progress=False)
    assert b.calls == 1
    assert torch.equal(after[[0, 1, 3, 4]], before[[0, 1, 3, 4]]) and not torch.equal(after[2], before[2])
    assert torch.allclose(after[2], direct(b, [paths[2]])[0], atol=1e-6)


def test_backbone_or_preprocessing_change_misses(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", 3)
    cache = tmp_path / "c"
    image_features(CountingBackbone(), paths, cache_dir=cache, progress=False)
    other = CountingBackbone(ident="counting-v2", seed=1)
    image_features(other, paths, cache_dir=cache, progress=False)
    assert other.calls == 3
    resized = CountingBackbone(size=4)
    out = image_features(resized, paths, cache_dir=cache, progress=False)
    assert resized.calls == 3 and torch.allclose(out, direct(resized, paths), atol=1e-6)


@pytest.mark.spawns
def test_views_are_deterministic_and_cached(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", 3)
    b = CountingBackbone()
    v = image_features(b, paths, views=4, batch_size=5, cache_dir=tmp_path / "c1", progress=False)
    assert v.shape == (3, 5, 6) and b.calls == 15
    assert torch.allclose(v[:, 0], direct(b, paths), atol=1e-6)
    assert all(not torch.allclose(v[i, 0], v[i, k]) for i in range(3) for k in range(1, 5))
    b2 = CountingBackbone()
    same = image_features(b2, paths, views=4, cache_dir=tmp_path / "c2", progress=False)  # a fresh cache
    assert torch.allclose(same, v, atol=1e-6)
    more = image_features(b2, paths, views=6, cache_dir=tmp_path / "c2", progress=False)
    assert b2.calls == 15 + 6 and torch.equal(more[:, :5], same)  # only views 5 and 6 were computed
    other_seed = image_features(
        CountingBackbone(), paths, views=4, seed=1, cache_dir=tmp_path / "c2", progress=False
    )
    assert torch.equal(other_seed[:, 0], v[:, 0]) and not torch.allclose(other_seed[:, 1:], v[:, 1:])


@pytest.mark.spawns
def test_concurrent_writers_leave_a_consistent_cache(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", 12)
    cache = tmp_path / "c"
    results: list[torch.Tensor] = []

    def run() -> None:
        results.append(
            image_features(CountingBackbone(), paths, batch_size=2, cache_dir=cache, progress=False)
        )

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(torch.equal(r, results[0]) for r in results)
    b = CountingBackbone()
    assert torch.equal(image_features(b, paths, cache_dir=cache, progress=False), results[0]) and b.calls == 0
    leftovers = [p for p in cache.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_unchanged_files_are_not_rehashed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_images(tmp_path / "img", 4)
    hashed: list[str] = []
    real = features.content_hash
    monkeypatch.setattr(features, "content_hash", lambda p: (hashed.append(str(p)), real(p))[1])
    image_features(CountingBackbone(), paths, cache_dir=tmp_path / "c", progress=False)
    assert len(hashed) == 4
    hashed.clear()
    image_features(CountingBackbone(), paths, cache_dir=tmp_path / "c", progress=False)
    assert hashed == []
    st = paths[1].stat()
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000))
    b = CountingBackbone()
    image_features(b, paths, cache_dir=tmp_path / "c", progress=False)
    assert hashed == [str(paths[1])] and b.calls == 0  # touched, same content: re-hashed, still a hit


def test_unreadable_files(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "img", 2)
    bad = tmp_path / "img" / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(UsageError, match=r"broken\.png"):
        image_features(CountingBackbone(), [*paths, bad], cache_dir=tmp_path / "c", progress=False)
    failures: dict[int, str] = {}
    out = image_features(
        CountingBackbone(),
        [paths[0], bad, tmp_path / "missing.png", paths[1]],
        cache_dir=tmp_path / "c",
        progress=False,
        failures=failures,
    )
    assert sorted(failures) == [1, 2] and "broken.png" in failures[1] and "not found" in failures[2]
    assert torch.isnan(out[1]).all() and torch.isnan(out[2]).all() and not torch.isnan(out[[0, 3]]).any()


def test_real_open_clip_backbone(native_dir: Path, tmp_path: Path) -> None:
    from kmat.backbones.open_clip import OpenCLIP

    b = OpenCLIP(model=f"local-dir:{native_dir}")
    paths = write_images(tmp_path / "img", 3)
    out = image_features(b, paths, cache_dir=tmp_path / "c", progress=False)
    want = b.encode_image(torch.stack([b.preprocess(load_image(p)) for p in paths]))
    assert torch.allclose(out, want, atol=1e-6)
    (info,) = (tmp_path / "c" / "features").glob("*/info.json")
    assert b.id in info.read_text()


def test_default_cache_dir_is_kmat_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KMAT_CACHE", str(tmp_path / "kc"))
    image_features(CountingBackbone(), write_images(tmp_path / "img", 1), progress=False)
    assert len(list((tmp_path / "kc" / "features").glob("*/*.safetensors"))) == 1
    assert (tmp_path / "kc" / "file-hashes.json").is_file()
