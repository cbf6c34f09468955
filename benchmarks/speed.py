"""Speed benchmark: kmat's training step against the naive step and the lower bound, the chest-sized protocol,
predict and peak memory, measured side by side in one run on BiomedCLIP's architecture and on phantom.

BiomedCLIP's architecture (ViT-B/16 image tower, PubMedBERT-size BERT text tower, context 256) is built
offline with random weights (speed does not depend on weight values); the task is ``chest`` (3 classes, its
modality words and descriptions), the transport ``fgw``, the training settings kmat's defaults (16 shots,
50 epochs, batch 4: 12 steps per epoch, 600 per run).

1. naive step: the batch's images re-encoded by the image tower (no grad) and the text tower run at the full
   256-token context (what the public prompt-learning repos do), then kmat's own loss and optimizer step;
   kmat's step: ``Trainer.step`` (the trainer's per-step call) on cached image features, prompts at their
   real length (packed without padding), the text tower's frozen linear layers on MKL-packed weights
   (``backbones/prepacked.py``), description prototypes encoded once. Ratio naive / kmat. What the packed
   weights gain: whole K-MaT epochs (12 steps) with and without them, alternated.
2. lower bound: the text tower forward + backward of the 2K prompts at their real length (one
   ``encode_prompts`` call on a leaf context) plus K-MaT's loss terms; ratio kmat / bound, timed interleaved
   with kmat's step (and FGW) apart from the naive step, whose pass over the unpacked weights would leave
   kmat's packed ones out of the caches for the next call.
3. FGW share: the transport's forward + backward on the step's (K, D) embeddings / kmat's step.
4. chest-sized protocol: one K-MaT training run given cached features (method set-up, which encodes the
   descriptions, plus 50 epochs: measured through ``Trainer.fit`` with its checkpoints in full mode, and
   projected as 50 x (12 x step + checkpoint) from the interleaved step times); the one-time encoding of the
   images (``kmat_cli.features``, from PNG files into a cold cache) against the bare image tower; the
   projected total of 6 methods x 3 seeds with the image features encoded once and shared by all 18 runs
   (per method: set-up + 50 x (12 x its step + checkpoint) + evaluation of the 1678 + 914 test features).
5. ``kmat predict`` (from PNG files, 1 decoding worker) against the bare image-tower forward on the same
   images decoded beforehand, for BiomedCLIP's image tower and for the phantom one (the latter on one torch
   thread, its recommended setting, with the decoding worker on the second core).
6. peak RSS (VmHWM) of a training run and of a predict run, each in a child process of its own.

Repetitions are interleaved (A B A B ...) after one warm-up round, so machine load hits all alike; times are
medians and ratios the median of per-repetition ratios. On a CUDA machine the same table follows for the GPU.

    .venv/bin/python benchmarks/speed.py --quick      # what `make bench` runs (< 3 minutes on 2 cores)
    .venv/bin/python benchmarks/speed.py              # full: more repetitions, the real 50-epoch run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import torch
from _common import (
    biomedclip,
    biomedclip_dir,
    cores,
    interleave,
    machine,
    per_rep_ratio,
    phantom_weights,
    png_images,
    prompts_file,
)

Log = Callable[[str], None]
TASK = "chest"
METHODS = ("zeroshot", "coop", "cocoop", "kgcoop", "biomedcoop", "kmat")
SEEDS = 3
CHEST_TEST = (1678, 914)  # high-end CT and low-end X-ray test images (Table 1 of the K-MaT paper)
GOALS = {
    "speedup": 10.0,  # naive / kmat >= 10x
    "overhead": 1.3,  # kmat / bound <= 1.3x
    "fgw_share": 0.05,  # < 5% of a step
    "train_run_s": 120.0,  # one chest-sized training run < 2 min
    "encode_ratio": 0.95,  # feature encoding >= 95% of the bare image tower
    "predict_ratio": 0.90,  # predict >= 90% of the bare image tower
}


@dataclass(frozen=True)
class Plan:
    """How much to measure: repetitions, image counts, whether K-MaT's 50 epochs are run for real."""

    name: str
    step_reps: int
    epoch_reps: int  # packed/unpacked K-MaT epochs (row 1's prepacking gain)
    images: int  # PNGs for the encoding and BiomedCLIP predict rows
    image_batch: int
    image_reps: int
    full_kmat_run: bool  # also fit K-MaT's real 50 epochs (else only the projection from its steps)
    phantom_images: int
    phantom_reps: int
    eval_subset: int  # test features CoCoOp's (image-conditioned) evaluation is timed on, then scaled


QUICK = Plan("quick", 3, 2, 16, 8, 3, False, 2048, 3, 64)
FULL = Plan("full", 9, 5, 48, 16, 5, True, 2048, 7, 128)


@dataclass
class Results:
    """What one device's measurement produced (seconds unless named otherwise)."""

    device: str
    steps: dict[str, float] = field(default_factory=dict)  # medians: naive, kmat, bound, fgw
    speedup: float = float("nan")
    epochs: dict[str, float] = field(default_factory=dict)  # medians of a K-MaT epoch: packed, unpacked
    prepack_gain: float = float("nan")  # epoch with unpacked text weights / epoch with packed ones
    overhead: float = float("nan")
    fgw_share: float = float("nan")
    step_tokens: str = ""
    runs: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> setup, step, save, fit, eval
    kmat_fit_measured: bool = False
    kmat_projected_fit: float = float("nan")  # the projection, when the fit was measured too
    encode_ratio: float = float("nan")
    encode_rate: float = float("nan")
    unique_images: int = 0
    descriptions: int = 0  # description texts K-MaT's set-up encodes
    predict: dict[str, float] = field(default_factory=dict)  # "biomedclip", "phantom" -> ratio
    predict_rate: dict[str, float] = field(default_factory=dict)
    predict_workers: dict[str, str] = field(default_factory=dict)  # what --workers auto chose
    rss_mb: dict[str, float] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------ derived
    def train_run_s(self) -> float:
        """One K-MaT run: method set-up + 50 epochs."""
        r = self.runs.get("kmat", {})
        return r.get("setup", float("nan")) + r.get("fit", float("nan"))

    def protocol_s(self) -> tuple[float, float, float]:
        """(one-time image encoding, 6 methods x 3 seeds of set-up + training + evaluation, their sum)."""
        encode = self.unique_images / self.encode_rate if self.encode_rate > 0 else float("nan")
        runs = SEEDS * sum(r["setup"] + r["fit"] + r["eval"] for r in self.runs.values())
        return encode, runs, encode + runs


# ---------------------------------------------------------------------------------------------- the step
@contextmanager
def backbone_settings(backbone: Any, **values: object) -> Iterator[None]:
    """Set attributes of ``backbone`` (``truncate_prompts``, ``prepack_weights``, ...) for the block."""
    previous = {name: getattr(backbone, name) for name in values}
    for name, value in values.items():
        setattr(backbone, name, value)
    try:
        yield
    finally:
        for name, value in previous.items():
            setattr(backbone, name, value)


def naive_step(trainer: Any, backbone: Any, pixels: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """The naive K-MaT step: the image tower on the batch's (preprocessed) images without gradients, then the
    same loss and optimizer step as kmat's with the text tower at the full context (no truncation) and its
    weights as they are (not MKL-packed)."""
    with torch.no_grad():
        features = backbone.encode_image(pixels)
    with backbone_settings(backbone, truncate_prompts=False, prepack_weights=False):
        return trainer.step(features, labels)


def bound_step(method: Any, features: torch.Tensor, labels: torch.Tensor, amp: Any = None) -> None:
    """The lower bound of a K-MaT step: one text-tower forward + backward of the 2K prompts at their real
    length (``encode_prompts`` on a leaf context, no prompt assembly, no optimizer) plus the loss terms."""
    from kmat_cli.prompts import encode, mixed_precision

    learner = method.prompts
    ctx = learner.contexts().detach()
    flat = ctx.reshape(-1, *ctx.shape[2:]).requires_grad_()
    texts = [t for g in learner.groups for t in learner.texts[g]]
    with mixed_precision(amp):
        emb = encode(learner.backbone[0], flat, texts)
    k = learner.num_classes
    text = {g: emb[i * k : (i + 1) * k] for i, g in enumerate(learner.groups)}
    terms = method.loss_terms(text, features, labels)
    torch.stack([t.float() for t in terms.values()]).sum().backward()


def transport_call(method: Any) -> Callable[[], None]:
    """The step's transport call alone: FGW on the current (K, D) prompt embeddings, forward + backward,
    in the precision the method uses (float64)."""
    with torch.no_grad():
        emb = method.text_embeddings()
    hi, lo = emb["hi"].double(), emb["lo"].double()

    def call() -> None:
        x = lo.clone().requires_grad_()
        method.setup.transport(hi, x).backward()

    return call


def step_fns(
    trainer: Any,
    method: Any,
    backbone: Any,
    pixels: torch.Tensor,
    features: torch.Tensor,
    labels: torch.Tensor,
) -> dict[str, Callable[[], object]]:
    """The four timed calls of rows 1-3: naive step, kmat's step (``Trainer.step``), lower bound, FGW."""
    return {
        "naive": lambda: naive_step(trainer, backbone, pixels, labels),
        "kmat": lambda: trainer.step(features, labels),
        "bound": lambda: bound_step(method, features, labels, trainer.amp),
        "fgw": transport_call(method),
    }


def time_steps(
    fns: Mapping[str, Callable[[], object]], reps: int, sync: Callable[[], None] | None = None, **kw: Any
) -> dict[str, list[float]]:
    """Rows 1-3's times: the naive step and kmat's step interleaved (``naive``, ``kmat_vs_naive``: the
    speed-up), then kmat's step, the bound and FGW interleaved without the naive step (``kmat``, ``bound``,
    ``fgw``): the naive step's pass over the unpacked weights leaves the packed ones out of the caches for
    whatever runs next, which would charge kmat's step, not the bound, for the naive step's traffic."""
    vs_naive = interleave({k: fns[k] for k in ("naive", "kmat")}, reps, sync=sync, **kw)
    steady = interleave({k: fns[k] for k in ("kmat", "bound", "fgw")}, reps, sync=sync, **kw)
    return {"naive": vs_naive["naive"], "kmat_vs_naive": vs_naive["kmat"], **steady}


def step_results(times: Mapping[str, Sequence[float]], res: Results) -> None:
    """Medians and per-repetition ratios of rows 1-3 (from :func:`time_steps`) into ``res``."""
    res.steps = {name: statistics.median(times[name]) for name in ("naive", "kmat", "bound", "fgw")}
    res.speedup = per_rep_ratio(times["naive"], times["kmat_vs_naive"])
    res.overhead = per_rep_ratio(times["kmat"], times["bound"])
    res.fgw_share = per_rep_ratio(times["fgw"], times["kmat"])


def epoch_fns(
    trainer: Any, backbone: Any, features: torch.Tensor, labels: torch.Tensor, steps: int
) -> dict[str, Callable[[], object]]:
    """An epoch of ``steps`` consecutive ``Trainer.step`` calls with the text tower's weights MKL-packed
    (``backbones/prepacked.py``, kmat's default) and one with them unpacked. Whole epochs, not single
    steps, so each runs in its own steady state (the packed and the plain weights are different memory)."""

    def epoch() -> None:
        for _ in range(steps):
            trainer.step(features, labels)

    def unpacked() -> None:
        with backbone_settings(backbone, prepack_weights=False):
            epoch()

    return {"packed": epoch, "unpacked": unpacked}


def epoch_results(times: Mapping[str, Sequence[float]], res: Results) -> None:
    """Medians of the packed/unpacked epochs and the gain (median of per-repetition ratios) into ``res``."""
    res.epochs = {name: statistics.median(t) for name, t in times.items()}
    res.prepack_gain = per_rep_ratio(times["unpacked"], times["packed"])


def tokens_line(backbone: Any, method: Any) -> str:
    """How many tokens the text tower runs per step (real, packed, full context)."""
    learner = method.prompts
    texts = tuple(t for g in learner.groups for t in learner.texts[g])
    prep = backbone._prepared.get((texts, learner.context_length, True))
    if prep is None:
        return ""
    real = int((prep.ids != backbone._layout_().pad_id).sum())
    run = prep.pack.rows * prep.pack.width if prep.pack is not None else prep.ids.numel()
    full = len(texts) * backbone.context_length
    return f"{len(texts)} prompts, {real} real tokens; kmat runs {run}, the naive step {full}"


# ------------------------------------------------------------------------------------------ the protocol
def build_parts(backbone: Any, device: torch.device) -> Any:
    """The chest task, its descriptions and the fgw transport around ``backbone`` (as ``kmat train`` builds
    them, through the registry)."""
    from kmat_cli import assemble, config
    from kmat_cli.registry import get

    cfg = config.defaults()
    cfg["task"] = {"name": TASK}
    cfg["transport"] = {"name": "fgw"}
    task = assemble.build_task(cfg)
    transport = get("transports", "fgw")()
    return assemble.Parts(
        cfg=cfg,
        device=device,
        backbone=backbone,
        task=task,
        descriptions=task.descriptions,
        transport=transport,
    )


def build_method(parts: Any, name: str, seed: int = 1) -> Any:
    """Method ``name`` with its defaults, built as a run builds it (``assemble.build_method``)."""
    from kmat_cli import assemble

    parts.cfg["method"] = {"name": name}
    return assemble.build_method(parts, seed=seed)


def shots(parts: Any, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Stand-in cached features of the few-shot set: K x shots normalised random rows and their labels."""
    cfg = parts.cfg["train"]
    k, n = len(parts.task.class_names), int(cfg["shots"])
    g = torch.Generator().manual_seed(seed)
    feats = torch.nn.functional.normalize(torch.randn(k * n, parts.backbone.embed_dim, generator=g), dim=-1)
    return feats.to(device), torch.arange(k).repeat(n).to(device)


def train_cfg(parts: Any, epochs: int) -> dict[str, Any]:
    cfg = dict(parts.cfg["train"])
    cfg["epochs"] = epochs
    return cfg


def run_costs(
    parts: Any,
    names: Sequence[str],
    folder: Path,
    test_feats: Mapping[str, torch.Tensor],
    *,
    reps: int,
    eval_subset: int,
    sync: Callable[[], None] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, dict[str, float]]:
    """Per method, one run given cached features: ``setup`` (building the method, which encodes its fixed
    texts), ``step`` (median ``Trainer.step``, the methods' steps interleaved, each after an untimed step of
    its own), ``save`` (median
    ``Trainer.save``: the checkpoint and metrics written after every epoch), ``fit`` = epochs x (steps per
    epoch x step + save) and ``eval`` (``kmat_cli.evaluate.classify`` on the test features; an
    image-conditioned method on ``eval_subset`` of them, scaled)."""
    from kmat_cli import evaluate
    from kmat_cli.train import Trainer

    device = parts.device
    epochs, batch = int(parts.cfg["train"]["epochs"]), int(parts.cfg["train"]["batch_size"])
    feats, labels = shots(parts, device)
    out: dict[str, dict[str, float]] = {}
    methods, trainers = {}, {}
    for name in names:
        log(f"row 4: {name}: set-up")
        start = time.perf_counter()
        methods[name] = build_method(parts, name)
        out[name] = {"setup": time.perf_counter() - start, "step": 0.0, "save": 0.0, "fit": 0.0}
        if methods[name].trainable:
            (folder / name).mkdir(parents=True, exist_ok=True)
            trainers[name] = Trainer(
                methods[name],
                feats,
                labels,
                parts.cfg["train"],
                device=device,
                folder=folder / name,
                progress=False,
            )
    log(f"row 4: steps of {', '.join(trainers)} (interleaved)")
    # each timed step follows an untimed one of the same method: the methods share the backbone, whose
    # layers keep packed weights for two prompt batches only (backbones/prepacked.py), and a training run
    # has one; the untimed step re-packs for this method, as its own run would have them
    step = {n: (lambda t=t: t.step(feats[:batch], labels[:batch])) for n, t in trainers.items()}
    steps = interleave(step, reps, sync=sync, before=step)
    saves = interleave({n: t.save for n, t in trainers.items()}, reps)
    for name, trainer in trainers.items():
        step, save = statistics.median(steps[name]), statistics.median(saves[name])
        out[name].update(step=step, save=save, fit=epochs * (len(trainer.batches(0)) * step + save))
    for name, method in methods.items():
        evaluation = 0.0
        for m, f in test_feats.items():
            part = f[:eval_subset] if method.image_conditioned else f
            start = time.perf_counter()
            evaluate.classify(method, part, m)
            if sync:
                sync()
            evaluation += (time.perf_counter() - start) * f.shape[0] / part.shape[0]
        out[name]["eval"] = evaluation
    return out


def full_fit(parts: Any, folder: Path, sync: Callable[[], None] | None = None) -> float:
    """Seconds of a real K-MaT ``Trainer.fit`` over the configured epochs (checkpoints written)."""
    from kmat_cli.train import Trainer

    method = build_method(parts, "kmat")
    feats, labels = shots(parts, parts.device)
    folder.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(
        method, feats, labels, parts.cfg["train"], device=parts.device, folder=folder, progress=False
    )
    start = time.perf_counter()
    trainer.fit()
    if sync:
        sync()
    return time.perf_counter() - start


def encoding_fns(
    backbone: Any, files: Sequence[Path], batch_size: int, cache_root: Path
) -> dict[str, Callable[[], object]]:
    """Bare image tower on pre-decoded pixels vs ``kmat_cli.features.image_features`` from the PNG files into
    a fresh (cold) cache each call (hashing, decoding, the tower, shards written)."""
    from kmat_cli.features import image_features
    from kmat_cli.images import load_image

    pixels = torch.stack([backbone.preprocess(load_image(p)) for p in files])
    batches = [pixels[i : i + batch_size] for i in range(0, len(pixels), batch_size)]
    counter = [0]

    def bare() -> None:
        for x in batches:
            backbone.encode_image(x)

    def features() -> None:
        counter[0] += 1
        image_features(
            backbone, files, batch_size=batch_size, cache_dir=cache_root / str(counter[0]), progress=False
        )

    return {"bare": bare, "features": features}


# ------------------------------------------------------------------------------------------ peak memory
def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM), MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_train(device: str) -> dict[str, float]:
    """A K-MaT training run in this (child) process: BiomedCLIP architecture, chest, one epoch."""
    with tempfile.TemporaryDirectory() as tmp:
        from kmat_cli.train import Trainer

        dev = torch.device(device)
        parts = build_parts(biomedclip(Path(tmp) / "model", device=device), dev)
        method = build_method(parts, "kmat")
        feats, labels = shots(parts, dev)
        Trainer(
            method, feats, labels, train_cfg(parts, 1), device=dev, folder=Path(tmp) / "run", progress=False
        ).fit()
    return {"peak_rss_mb": peak_rss_mb()}


def child_predict(device: str, prompts: str, images: str, batch_size: int) -> dict[str, float]:
    """``kmat predict`` (library call, 1 decoding worker) in this (child) process."""
    from kmat_cli.predict import RowWriter, find_inputs, load_classifier, predict

    clf = load_classifier(embeddings=prompts, device=device)
    files, _ = find_inputs([images])
    with open(os.devnull, "wb") as sink:
        predict(clf, files, RowWriter(sink, clf.class_names), batch_size=batch_size, workers=1)
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": peak_rss_mb(), "worker_peak_rss_mb": worker}


def in_child(args: list[str]) -> dict[str, float]:
    """Run ``speed.py --child ...`` in a fresh interpreter; its JSON answer."""
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ report
def _ok(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _s(x: float) -> str:
    if x != x:
        return "n/a"
    if x >= 120:
        return f"{x / 60:.1f} min"
    return f"{x:.2f} s" if x >= 1 else f"{1e3 * x:.1f} ms"


def table(res: Results) -> str:
    """The markdown table of one device's results."""
    g = GOALS
    st = res.steps
    rows = [
        ("1", "naive step (image tower on 4 images + text at the full 256 tokens)", _s(st.get("naive", float("nan"))), "", ""),
        ("1", "kmat step (`Trainer.step`: cached features, real-length prompts)", _s(st.get("kmat", float("nan"))), "", ""),
        ("1", "**speed-up vs naive**", f"{res.speedup:.1f}x", f">= {g['speedup']:.0f}x", _ok(res.speedup >= g["speedup"])),
        ("1", "K-MaT epoch (12 steps), text weights MKL-packed (default)", _s(res.epochs.get("packed", float("nan"))), "", ""),
        ("1", "K-MaT epoch (12 steps), text weights unpacked (`prepack_weights = False`)", _s(res.epochs.get("unpacked", float("nan"))), "", ""),
        ("1", "gain of the packed text weights (unpacked / packed epoch)", f"{res.prepack_gain:.2f}x", "", ""),
        ("2", "lower bound (text fwd+bwd of the 2K prompts at real length + loss)", _s(st.get("bound", float("nan"))), "", ""),
        ("2", "**overhead vs bound** (kmat step / bound)", f"{res.overhead:.2f}x", f"<= {g['overhead']}x", _ok(res.overhead <= g["overhead"])),
        ("3", "FGW forward + backward (K = 3, float64)", _s(st.get("fgw", float("nan"))), "", ""),
        ("3", "**FGW share of a step**", f"{100 * res.fgw_share:.2f}%", f"< {100 * g['fgw_share']:.0f}%", _ok(res.fgw_share < g["fgw_share"])),
    ]  # fmt: skip
    kmat = res.runs.get("kmat", {})
    if res.kmat_fit_measured:
        how = f"measured; projected {_s(res.kmat_projected_fit)}"
    else:
        how = "projected: 50 x (12 x step + checkpoint)"
    train = res.train_run_s()
    rows += [
        ("4", f"K-MaT run: method set-up (encodes its {res.descriptions} descriptions once)", _s(kmat.get("setup", float("nan"))), "", ""),
        ("4", f"K-MaT run: 50 epochs = 600 steps with checkpoints ({how})", _s(kmat.get("fit", float("nan"))), "", ""),
        ("4", "**training part of one chest-sized run** (set-up + 50 epochs)", _s(train), f"< {g['train_run_s'] / 60:.0f} min", _ok(train < g["train_run_s"])),
        ("4", "**image encoding (features cache) vs bare image tower**", f"{100 * res.encode_ratio:.0f}%", f">= {100 * g['encode_ratio']:.0f}%", _ok(res.encode_ratio >= g["encode_ratio"])),
    ]  # fmt: skip
    encode, runs, total = res.protocol_s()
    if res.runs:
        rows.append(
            ("4", f"one-time encoding of {res.unique_images} unique images at {res.encode_rate:.2f} images/s", _s(encode), "", "")
        )  # fmt: skip
        for name, r in res.runs.items():
            what = (
                f"set-up {_s(r['setup'])} + training {_s(r['fit'])} (step {_s(r['step'])}) "
                f"+ evaluation {_s(r['eval'])}"
            )
            rows.append(("4", f"{name}: one run = {what}", _s(r["setup"] + r["fit"] + r["eval"]), "", ""))
        rows.append(("4", f"6 methods x {SEEDS} seeds (18 runs on the shared features)", _s(runs), "", ""))
        rows.append(
            ("4", "**projected total of the chest protocol** (encoding + 18 runs)", _s(total), "", "")
        )
    for key, label in (
        ("biomedclip", "BiomedCLIP image tower"),
        ("phantom", "phantom image tower, 1 thread"),
    ):
        if key in res.predict:
            ratio = res.predict[key]
            rows.append(
                ("5", f"**predict vs bare forward**, {label}; {res.predict_workers.get(key, '')} ({res.predict_rate[key]:.1f} images/s)", f"{100 * ratio:.0f}%", f">= {100 * g['predict_ratio']:.0f}%", _ok(ratio >= g["predict_ratio"]))
            )  # fmt: skip
    for key, label in (
        ("train", "peak RSS, K-MaT training run"),
        ("predict", "peak RSS, predict (main process)"),
        ("predict_worker", "peak RSS, predict decoding worker"),
    ):
        if key in res.rss_mb:
            rows.append(("6", label, f"{res.rss_mb[key]:.0f} MB", "", ""))
    lines = ["| # | measurement | value | goal | met |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(lines)


def last_line(res: Results) -> str:
    return f"speedup_vs_naive={res.speedup:.1f} overhead_vs_bound={res.overhead:.2f}"


def auto_label(n_files: int, batch_size: int, device: str) -> str:
    """What ``kmat predict``'s ``--workers auto`` does for these inputs, in words."""
    from kmat_cli.predict import auto_workers

    n, adaptive = auto_workers(n_files, batch_size, device)
    if adaptive and -(-n_files // batch_size) < 3:
        return "workers auto: decoding in the main process (all cores run the model)"
    return f"workers auto: {n}{' if decoding is >= 10% of the work' if adaptive else ''}"


# ------------------------------------------------------------------------------------------------ running
def step_rows(res: Results, parts: Any, plan: Plan, sync: Callable[[], None] | None, log: Log) -> None:
    """Rows 1-3: the naive step, kmat's step, the lower bound and FGW; K-MaT epochs packed and unpacked."""
    from kmat_cli.train import Trainer

    log("rows 1-3: naive step, kmat step, lower bound, FGW (interleaved)")
    backbone, dev = parts.backbone, parts.device
    method = build_method(parts, "kmat")
    feats, labels = shots(parts, dev)
    trainer = Trainer(method, feats, labels, train_cfg(parts, 50), device=dev, progress=False)
    batch = int(parts.cfg["train"]["batch_size"])
    size = backbone.preprocess_spec["image_size"]
    pixels = torch.randn(batch, 3, size, size, device=dev)
    fns = step_fns(trainer, method, backbone, pixels, feats[:batch], labels[:batch])
    step_results(time_steps(fns, plan.step_reps, sync=sync), res)
    res.step_tokens = tokens_line(backbone, method)
    log("row 1: K-MaT epochs with packed and unpacked text weights (interleaved)")
    epochs = epoch_fns(trainer, backbone, feats[:batch], labels[:batch], len(trainer.batches(0)))
    epoch_results(interleave(epochs, plan.epoch_reps, sync=sync), res)


def run_rows(
    res: Results, parts: Any, plan: Plan, tmp: Path, sync: Callable[[], None] | None, log: Log
) -> None:
    """Row 4: the cost of a run of every method (K-MaT's 50 epochs measured or projected)."""
    g = torch.Generator().manual_seed(1)
    test = {
        m: torch.nn.functional.normalize(torch.randn(n, parts.backbone.embed_dim, generator=g), dim=-1).to(
            parts.device
        )
        for m, n in zip(("hi", "lo"), CHEST_TEST, strict=True)
    }
    res.runs = run_costs(
        parts,
        METHODS,
        tmp / "runs",
        test,
        reps=plan.step_reps,
        eval_subset=plan.eval_subset,
        sync=sync,
        log=log,
    )
    if plan.full_kmat_run:
        log("row 4: K-MaT's real 50-epoch training run")
        res.kmat_projected_fit = res.runs["kmat"]["fit"]
        res.runs["kmat"]["fit"] = full_fit(parts, tmp / "runs" / "kmat-full", sync)
        res.kmat_fit_measured = True
    res.descriptions = sum(len(texts) for per in parts.descriptions.values() for texts in per.values())
    shots_per_seed = len(parts.task.class_names) * int(parts.cfg["train"]["shots"])
    res.unique_images = sum(CHEST_TEST) + SEEDS * shots_per_seed


def encoding_rows(
    res: Results,
    parts: Any,
    plan: Plan,
    tmp: Path,
    model_dir: Path,
    sync: Callable[[], None] | None,
    log: Log,
) -> Path:
    """Rows 4-5: image encoding and predict on BiomedCLIP's image tower; returns the prompts file."""
    from predict_speed import predict_fns

    from kmat_cli.predict import load_classifier

    device = res.device
    log(f"rows 4-5: image encoding and predict on {plan.images} PNGs (interleaved)")
    files = png_images(tmp / "images", plan.images, 256)
    prompts = prompts_file(tmp, "biomedclip", {"model": f"local-dir:{model_dir}"}, k=3)
    clf = load_classifier(embeddings=prompts, device=device)
    with open(os.devnull, "wb") as sink:
        # one bare forward (the classifier's image tower; the same architecture as the full model's)
        fns = {
            **predict_fns(clf, files, batch_size=plan.image_batch, workers=[None], sink=sink),
            "features": encoding_fns(parts.backbone, files, plan.image_batch, tmp / "cache")["features"],
        }
        times = interleave(fns, plan.image_reps, sync=sync)
    res.encode_ratio = per_rep_ratio(times["bare"], times["features"])
    res.encode_rate = len(files) / statistics.median(times["features"])
    res.predict["biomedclip"] = per_rep_ratio(times["bare"], times["predict-auto"])
    res.predict_rate["biomedclip"] = len(files) / statistics.median(times["predict-auto"])
    res.predict_workers["biomedclip"] = auto_label(len(files), plan.image_batch, device)
    return prompts


def phantom_row(
    res: Results, plan: Plan, tmp: Path, threads: int, sync: Callable[[], None] | None, log: Log
) -> None:
    """Row 5: predict on phantom (small images, one thread)."""
    from predict_speed import predict_fns

    from kmat_cli.predict import load_classifier

    log(f"row 5: predict on phantom, {plan.phantom_images} PNGs of 32 px (interleaved, 1 thread)")
    weights, _ = phantom_weights(tmp)
    (tmp / "phantom").mkdir()
    pfiles = png_images(tmp / "phantom" / "images", plan.phantom_images, 32)
    pclf = load_classifier(
        embeddings=prompts_file(tmp / "phantom", "phantom", {"weights": weights}), device=res.device
    )
    torch.set_num_threads(1)
    try:
        with open(os.devnull, "wb") as sink:
            fns = predict_fns(pclf, pfiles, batch_size=64, workers=[None], sink=sink)
            times = interleave(fns, plan.phantom_reps, sync=sync)
            res.predict_workers["phantom"] = auto_label(len(pfiles), 64, res.device)
    finally:
        torch.set_num_threads(threads)
    res.predict["phantom"] = per_rep_ratio(times["bare"], times["predict-auto"])
    res.predict_rate["phantom"] = len(pfiles) / statistics.median(times["predict-auto"])


def memory_row(res: Results, plan: Plan, tmp: Path, prompts: Path, threads: int, log: Log) -> None:
    """Row 6: peak memory of a training run and of a predict run, each in a child process."""
    log("row 6: peak RSS of a training run and of a predict run (child processes)")
    common = ["--threads", str(threads), "--device", res.device]
    res.rss_mb["train"] = in_child(["--child", "train", *common])["peak_rss_mb"]
    pred = in_child(
        ["--child", "predict", *common, "--prompts", str(prompts), "--images", str(tmp / "images"),
         "--batch-size", str(plan.image_batch)]
    )  # fmt: skip
    res.rss_mb["predict"] = pred["peak_rss_mb"]
    res.rss_mb["predict_worker"] = pred["worker_peak_rss_mb"]


def measure(device: str, plan: Plan, threads: int, log: Log) -> Results:
    """All rows for one device."""
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else None
    res = Results(device=device)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model_dir = biomedclip_dir(tmp / "model")
        log("building BiomedCLIP's architecture (random weights)")
        parts = build_parts(biomedclip(model_dir, device=device), dev)
        step_rows(res, parts, plan, sync, log)
        run_rows(res, parts, plan, tmp, sync, log)
        prompts = encoding_rows(res, parts, plan, tmp, model_dir, sync, log)
        del parts  # BiomedCLIP leaves memory before the phantom rows
        phantom_row(res, plan, tmp, threads, sync, log)
        memory_row(res, plan, tmp, prompts, threads, log)
    return res


def header(res: Results, plan: Plan, threads: int, load_start: tuple, load_end: tuple) -> str:
    dev = res.device
    lines = [
        f"Date {date.today()}; {machine(dev)}; device {dev}; {threads} torch threads; mode {plan.name} "
        f"(step rows: median of {plan.step_reps} interleaved repetitions after a warm-up).",
        f"Load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in load_start)}; at end "
        f"{', '.join(f'{x:.2f}' for x in load_end)}.",
    ]
    if res.step_tokens:
        lines.append(f"Text tower per step: {res.step_tokens}.")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="few repetitions, K-MaT's 50 epochs projected (< 3 min)"
    )
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--device", default="auto", help="cpu, cuda, or auto: the CPU, then CUDA when present")
    ap.add_argument("--child", choices=["train", "predict"], help=argparse.SUPPRESS)
    ap.add_argument("--prompts", help=argparse.SUPPRESS)
    ap.add_argument("--images", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=8, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        device = "cpu" if args.device == "auto" else args.device
        if args.child == "train":
            out = child_train(device)
        else:
            out = child_predict(device, args.prompts, args.images, args.batch_size)
        print(json.dumps(out))
        return
    plan = QUICK if args.quick else FULL
    devices = (
        ["cpu", *(["cuda"] if torch.cuda.is_available() else [])] if args.device == "auto" else [args.device]
    )
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    log(f"{cores()} cores; {args.threads} torch threads; mode {plan.name}; devices {', '.join(devices)}")
    results = []
    for device in devices:
        load_start = os.getloadavg()
        res = measure(device, plan, args.threads, log)
        results.append((res, load_start, os.getloadavg()))
    for res, load_start, load_end in results:
        print(header(res, plan, args.threads, load_start, load_end))
        print()
        print(table(res))
        print()
    log("done")
    print(last_line(results[0][0]))


if __name__ == "__main__":
    main()
