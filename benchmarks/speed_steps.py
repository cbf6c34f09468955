"""Rows 1-3 of the speed benchmark (``speed.py``): the naive step, kmat's step (``Trainer.step``), the lower
bound (the text tower's forward + backward of the 2K prompts at their real length plus the loss terms) and
FGW's share, timed interleaved; K-MaT epochs with the text tower's weights MKL-packed and unpacked."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from _common import interleave, per_rep_ratio
from speed_parts import build_method, shots, train_cfg
from speed_plan import Log, Plan, Results, Sync


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
    fns: Mapping[str, Callable[[], object]], reps: int, sync: Sync = None, **kw: Any
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


def step_rows(res: Results, parts: Any, plan: Plan, sync: Sync, log: Log) -> None:
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
