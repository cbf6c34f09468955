"""Decoding workers of kmat predict: the automatic choice, the adaptive start, and identical batches whatever
the worker setting (the first batch decoded in the main process, numpy transfer, early worker shutdown)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kmat_cli import imagefiles as P
from kmat_cli import threads as policy
from kmat_cli.predict import FrameReader


@pytest.fixture(scope="module")
def pngs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("pngs")
    rng = np.random.default_rng(0)
    out = []
    for i in range(20):
        path = folder / f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(path)
        out.append(path)
    (folder / "broken.png").write_bytes(b"not a png")
    return [*out[:7], folder / "broken.png", *out[7:]]


@pytest.fixture(scope="module")
def split() -> P.SplitPreprocess:
    from kmat.backbones.phantom import model as files

    return P.SplitPreprocess(files.preprocess_transform())


def _batches(files: list[Path], split: P.SplitPreprocess, **options) -> object:
    """The pipeline's batches of predict's files (every frame)."""
    return P.batches(P.ImageFiles(files, FrameReader("all"), split), **options)


def _collect(batches) -> tuple[list, torch.Tensor]:
    rows, pixels = [], []
    for r, x in batches:
        rows += r
        pixels.append(x)
    return rows, torch.cat(pixels)


@pytest.mark.parametrize(("cores", "threads", "device", "want"), [
    (2, 2, "cpu", (1, True)),     # torch takes every core: a worker only if decoding is a real share
    (2, 1, "cpu", (1, False)),    # one core left free: a worker at once
    (16, 4, "cpu", (8, False)),   # free cores, at most 8
    (16, 16, "cpu", (8, True)),
    (4, 4, "cuda", (3, False)),   # a GPU runs the model: every core but one decodes
    (1, 1, "cuda", (1, False)),
])  # fmt: skip
def test_auto_workers(
    monkeypatch: pytest.MonkeyPatch, cores: int, threads: int, device: str, want: tuple
) -> None:
    monkeypatch.setattr(policy.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    assert policy.decode_workers(1000, 10, device) == want
    assert policy.decode_workers(25, 10, device)[0] <= 3  # never more workers than batches


def test_batches_are_the_same_with_and_without_workers(pngs: list[Path], split: P.SplitPreprocess) -> None:
    want_rows, want = _collect(_batches(pngs, split, batch_size=4, workers=0))
    assert [i for i, _, _ in want_rows] == list(range(len(pngs)))
    assert sum(err is not None for _, _, err in want_rows) == 1 and want.dtype == torch.float32
    for workers in (1, 2):
        rows, got = _collect(_batches(pngs, split, batch_size=4, workers=workers))
        assert rows == want_rows and torch.equal(got, want)
    rows, got = _collect(_batches(pngs, split, batch_size=4, workers=1, finish=False))
    assert rows == want_rows and got.dtype == torch.uint8 and torch.equal(split.finish(got), want)


class _Spy:
    """Records whether a DataLoader was built (i.e. worker processes started)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.built = 0
        real = torch.utils.data.DataLoader

        def build(*args, **kwargs):
            self.built += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(torch.utils.data, "DataLoader", build)


class _Clock:
    """A stand-in for ``time.perf_counter`` in kmat_cli.imagefiles: every reading is ``tick`` seconds after the
    previous one, and ``advance`` adds the time a consumer spends on a batch, so the adaptive choice is decided
    by the stated durations, not by how busy the machine is."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("slow_consumer", [True, False])
def test_adaptive_workers_start_only_when_decoding_matters(
    pngs: list[Path], split: P.SplitPreprocess, monkeypatch: pytest.MonkeyPatch, slow_consumer: bool
) -> None:
    """Decoding the first batch takes one tick (10 ms); the consumer then takes 1 s (a model far slower than
    decoding: stay in this process) or nothing (decoding is all the work: start the workers)."""
    spy = _Spy(monkeypatch)
    want_rows, want = _collect(_batches(pngs, split, batch_size=4, workers=0))
    clock = _Clock(tick=0.01)
    monkeypatch.setattr(P, "time", clock)
    rows, pixels = [], []
    for r, x in _batches(pngs, split, batch_size=4, workers=1, adaptive=True):
        rows += r
        pixels.append(x)
        clock.advance(1.0 if slow_consumer else 0.0)
    assert rows == want_rows and torch.equal(torch.cat(pixels), want)
    assert spy.built == (0 if slow_consumer else 1)


def test_adaptive_with_few_batches_decodes_here(
    pngs: list[Path], split: P.SplitPreprocess, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _Spy(monkeypatch)
    rows, _ = _collect(_batches(pngs[:8], split, batch_size=4, workers=1, adaptive=True))
    assert len(rows) == 8 and spy.built == 0


def test_consumer_stopping_early_shuts_the_workers_down(pngs: list[Path], split: P.SplitPreprocess) -> None:
    gen = _batches(pngs, split, batch_size=2, workers=1)
    next(gen)
    next(gen)
    gen.close()  # GeneratorExit inside: the DataLoader iterator is released, its worker joined
    import multiprocessing

    deadline = time.time() + 10
    while multiprocessing.active_children() and time.time() < deadline:
        time.sleep(0.05)
    assert not multiprocessing.active_children()
