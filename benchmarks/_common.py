"""Builders and helpers shared by the benchmark scripts (not a benchmark itself).

* :func:`biomedclip`: BiomedCLIP's architecture (timm ViT-B/16 image tower, PubMedBERT-size BERT text tower
  from a hand-written config with the WordPiece vocabulary of ``tests/fixtures``, context 256, embedding 512)
  with seeded random weights, built offline from a ``local-dir:`` folder; speed does not depend on weights.
* :func:`phantom_weights`, :func:`prompts_file`, :func:`png_images`: the inputs of a ``kmat predict`` run.
* :func:`interleave`, :func:`per_rep_ratio`: side-by-side timing (A B A B ...) and its ratios.
* :func:`machine`, :func:`cpu_name`, :func:`cores`, :func:`seconds`, :func:`rate`: reporting.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
for _path in (REPO, REPO / "tests" / "support"):  # kmat itself; tests/support/folders.py
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


# ----------------------------------------------------------------------------------------------- models
def biomedclip_dir(folder: Path, *, tiny: bool = False) -> Path:
    """A weight-less BiomedCLIP ``local-dir:`` folder (``tiny``: the same tower kinds at toy size)."""
    from folders import write_biomedclip_dir

    return write_biomedclip_dir(folder, tiny=tiny)


def biomedclip(folder: Path, *, device: str = "cpu", tiny: bool = False, vision_only: bool = False) -> Any:
    """The ``biomedclip`` backbone (kmat's own plugin) on BiomedCLIP's architecture with random weights."""
    from kmat.backbones.open_clip import BiomedCLIP

    path = folder if (folder / "open_clip_config.json").is_file() else biomedclip_dir(folder, tiny=tiny)
    return BiomedCLIP(model=f"local-dir:{path}", device=device, vision_only=vision_only)


def phantom_weights(folder: Path) -> tuple[str, str]:
    """(weights path, description): the shipped phantom weights, else a seeded stand-in of its architecture."""
    from kmat.backbones.phantom import model as files

    if files.WEIGHTS.is_file():
        return str(files.WEIGHTS), "phantom (shipped weights)"
    weights = files.write_random(folder, words=60, context_length=64, seed=0)
    return str(weights), "phantom architecture (seeded random weights; shipped weights absent)"


def prompts_file(folder: Path, backbone_name: str, options: dict, k: int = 8) -> Path:
    """A prompts.safetensors for the backbone (random class embeddings; speed does not depend on them)."""
    from safetensors.torch import save_file

    from kmat_cli.registry import get

    b = get("backbones", backbone_name)(**options, vision_only=True)
    emb = F.normalize(torch.randn(k, b.embed_dim), dim=-1)
    meta = {
        "kmat.format": "kmat.prompts/v1",
        "kmat.class_names": json.dumps([f"class {i}" for i in range(k)]),
        "kmat.backbone": b.id,
        "kmat.embed_dim": str(b.embed_dim),
        "kmat.logit_scale": repr(float(b.logit_scale)),
        "kmat.preprocess": json.dumps(b.preprocess_spec, sort_keys=True),
        "kmat.task": "benchmark",
        "kmat.modalities": json.dumps({"hi": "hi", "lo": "lo"}),
        "kmat.version": "benchmark",
        "kmat.backbone_config": json.dumps({"name": backbone_name, **options}),
    }
    dest = folder / "prompts.safetensors"
    save_file({"text_embeddings.lo": emb, "text_embeddings.hi": emb.clone()}, str(dest), metadata=meta)
    return dest


def png_images(folder: Path, n: int, size: int, seed: int = 0) -> list[Path]:
    """``n`` distinct smooth random RGB PNGs of ``size`` x ``size`` (low-frequency noise, upsampled)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        small = rng.integers(0, 256, (max(2, size // 8), max(2, size // 8), 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR)
        out.append(folder / f"{i:05d}.png")
        img.save(out[-1])
    return out


# ------------------------------------------------------------------------------------------------ timing
def interleave(
    fns: Mapping[str, Callable[[], object]],
    reps: int,
    *,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
    sync: Callable[[], None] | None = None,
    before: Mapping[str, Callable[[], object]] | None = None,
) -> dict[str, list[float]]:
    """Seconds of each of ``fns`` per repetition, the functions run in turn (A B A B ...) so that changes in
    machine load hit all of them alike. ``warmup`` untimed rounds first; ``sync`` (e.g. a CUDA
    synchronize) runs before each clock reading; ``before[name]`` (optional) runs untimed right before each
    timed call of ``fns[name]`` (e.g. to bring that contender's state back after the others ran)."""
    wait = sync or (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    wait()
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            if before and name in before:
                before[name]()
                wait()
            start = clock()
            fn()
            wait()
            out[name].append(clock() - start)
    return out


def per_rep_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """The median over repetitions of ``num[i] / den[i]`` (both timed in the same round)."""
    return statistics.median(a / b for a, b in zip(num, den, strict=True))


# -------------------------------------------------------------------------------------------- reporting
def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> int:
    """CPU cores this process may use (``nproc``)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine(device: str = "cpu") -> str:
    """One line naming the machine: CPU model, cores, the GPU when ``device`` is CUDA, torch version."""
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.startswith("cuda") else ""
    return f"{cpu_name()}, {cores()} cores (nproc){gpu}; torch {torch.__version__}"


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rate(r: float) -> str:
    """An images/s figure: whole numbers from 100 up."""
    return f"{r:.0f}" if r >= 100 else f"{r:.2f}"
