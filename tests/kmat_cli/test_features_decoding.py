"""The feature cache decodes ahead in worker processes at once only where a core is free for them (else only
when decoding is a real share of the work: adaptive), and both ways give the same features (and the same
error for an unreadable file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from counting_backbone import CountingBackbone, direct, write_images

from kmat_cli import features, threads
from kmat_cli.api import UsageError


@pytest.mark.parametrize(("cores", "n_threads", "threaded"), [(2, 2, False), (2, 1, True), (8, 4, True)])
def test_decoder_threads_only_with_a_free_core(
    monkeypatch: pytest.MonkeyPatch, cores: int, n_threads: int, threaded: bool
) -> None:
    monkeypatch.setattr(features.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: n_threads)
    workers, adaptive = threads.decode_workers(1000, 10, CountingBackbone().device)
    assert workers >= 1 and adaptive != threaded


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.spawns
def test_both_decoders_give_the_same_features(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    monkeypatch.setattr(features.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)  # 2: in turn; 1: decoding threads
    paths = write_images(tmp_path / "img", 7)
    b = CountingBackbone()
    got = features.image_features(b, paths, batch_size=3, cache_dir=tmp_path / "cache", progress=False)
    assert torch.allclose(got, direct(b, paths), atol=1e-6) and b.calls == 7
    (tmp_path / "img" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(UsageError, match=r"bad\.png"):
        features.image_features(
            b, [*paths, tmp_path / "img" / "bad.png"], cache_dir=tmp_path / "cache2", progress=False
        )


class _Picky(CountingBackbone):
    """Its preprocessing fails on images 21 pixels high (a transform error, not a decoding one)."""

    def __init__(self) -> None:
        super().__init__()
        inner = self.preprocess

        def preprocess(img: Any) -> torch.Tensor:
            if img.height == 21:
                raise ValueError("odd height")
            return inner(img)

        self.preprocess = preprocess


@pytest.mark.spawns
def test_a_preprocessing_error_fails_its_file_only(tmp_path: Path) -> None:
    """A transform that raises on one image makes that file's row an error (named, with the reason) and
    the other files' features are those of the direct computation, as with an unreadable file."""
    paths = write_images(tmp_path / "img", 5)  # heights 20..24: img1.png is 21 high
    b = _Picky()
    failures: dict[int, str] = {}
    got = features.image_features(
        b, paths, batch_size=2, cache_dir=tmp_path / "c", progress=False, failures=failures
    )
    assert list(failures) == [1] and "img1.png" in failures[1] and "odd height" in failures[1]
    assert torch.isnan(got[1]).all()
    keep = [0, 2, 3, 4]
    assert torch.allclose(got[keep], direct(CountingBackbone(), [paths[i] for i in keep]), atol=1e-6)
    with pytest.raises(UsageError, match=r"img1\.png: cannot preprocess image \(ValueError: odd height\)"):
        features.image_features(b, paths, cache_dir=tmp_path / "c2", progress=False)
