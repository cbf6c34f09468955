"""Pretrain the phantom backbone contrastively on captioned phantom images: ``python -m kmat.backbones.phantom.pretrain``.

The corpus comes from the phantom task's ``pretrain`` stream (its own seed and keys, so no image of the
task's splits is ever seen): ``--n`` images, a ``--lo-fraction`` of them low-end (rare, as clinical photos
and X-rays are rare beside dermoscopy and CT in PubMed figures), each with a caption of what is visible and
sometimes a class name (half of the high-end captions, a ``--named-lo`` share of the low-end ones) that is
nearly as often the partner class's as its own (see ``kmat.tasks.phantom.captions.caption``).

Loss: symmetric InfoNCE over the batch, ``CE(s * f(x) g(t)^T, Y)`` with soft targets ``Y`` that spread
each row's mass uniformly over the texts with an identical caption (identical captions are joint
positives). AdamW, linear warm-up then cosine decay, learnable logit scale ``s`` capped at 100.

Deterministic on CPU: fixed seeds, ``torch.use_deterministic_algorithms(True)`` and a fixed thread count
(``--threads``, default 1: robust on a shared CPU); the same machine and thread count give the same bytes.
The files are written through kmat's atomic writer (:func:`write_files`). The task plugin is found through
the ``kmat.tasks`` entry point ``phantom``, as kmat's registry finds it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from kmat.backbones.phantom import model as files
from kmat.backbones.phantom.tokenizer import WordTokenizer

from kmat_cli.api import write_with

DEFAULTS: dict[str, Any] = {
    "seed": 1234,  # corpus seed (the task's splits use the "task" stream, whatever their seed)
    "n": 40000,
    "lo_fraction": 0.2,
    "named_lo": 0.1,  # share of low-end captions that name a class
    "epochs": 8,
    "batch_size": 256,
    "lr": 3e-3,
    "weight_decay": 0.1,
    "warmup": 60,
    "threads": 1,
    "context_length": 64,
}


def phantom_task_class() -> Any:
    """The class registered as the ``phantom`` task (entry point group ``kmat.tasks``)."""
    found = entry_points(group="kmat.tasks", name="phantom")
    if not found:
        raise SystemExit("the phantom task is not installed (no kmat.tasks entry point 'phantom')")
    return next(iter(found)).load()


def encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)`` run only over the first ``max(end position) + 1`` positions: exact,
    because the causal mask stops later positions from reaching earlier ones and pooling reads the end token."""
    n = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :n]
    x = model.token_embedding(tokens) + model.positional_embedding[:n]
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)]
    return x @ model.text_projection


def contrastive_loss(
    img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, caption_ids: torch.Tensor
) -> torch.Tensor:
    """Symmetric soft-target InfoNCE; rows/columns with identical captions share the target mass."""
    logits = scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    same = (caption_ids[:, None] == caption_ids[None, :]).float()
    target = same / same.sum(dim=1, keepdim=True)
    loss_i = -(target * logits.log_softmax(dim=1)).sum(dim=1).mean()
    loss_t = -(target * logits.log_softmax(dim=0)).sum(dim=0).mean()
    return 0.5 * (loss_i + loss_t)


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def write_files(out_dir: Path, writers: dict[str, Callable[[Path], Any]]) -> None:
    """Write each file ``out_dir / name`` by ``writer(tmp)`` through kmat's atomic writer (one file at a time:
    a reader sees each old file or its complete new one)."""
    for name, writer in writers.items():
        write_with(out_dir / name, writer)


def pretrain(out_dir: Path, cfg: dict[str, Any], log: Any = print) -> dict[str, Any]:
    """Build the corpus, train, and write the three backbone files into ``out_dir``; returns a summary.

    Runs with ``cfg["threads"]`` torch threads and deterministic algorithms; both settings are restored."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(int(cfg["threads"]))
    torch.use_deterministic_algorithms(True)
    try:
        return _pretrain(out_dir, cfg, log)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _pretrain(out_dir: Path, cfg: dict[str, Any], log: Any) -> dict[str, Any]:
    from safetensors.torch import save_file

    t0, cpu0 = time.perf_counter(), time.process_time()
    pixels, captions, _labels, is_lo = phantom_task_class().corpus(
        cfg["seed"], cfg["n"], cfg["lo_fraction"], cfg["named_lo"]
    )
    t_corpus = time.perf_counter() - t0
    log(f"corpus: {len(captions)} images ({int(is_lo.sum())} low-end) in {t_corpus:.1f} s")

    tokenizer = WordTokenizer.from_texts(captions, cfg["context_length"])
    tokens = tokenizer(captions)
    uniq: dict[str, int] = {}
    caption_ids = torch.tensor([uniq.setdefault(c, len(uniq)) for c in captions])
    images = torch.from_numpy(pixels)

    torch.manual_seed(cfg["seed"])
    model_cfg = files.model_config(tokenizer.vocab_size, cfg["context_length"])
    model = files.build(model_cfg)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": other, "weight_decay": 0.0}],
        lr=cfg["lr"],
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    n, bs = len(captions), int(cfg["batch_size"])
    steps_per_epoch = n // bs
    total = steps_per_epoch * int(cfg["epochs"])
    order_gen = torch.Generator().manual_seed(cfg["seed"])
    model.train()
    step, t1, running = 0, time.perf_counter(), 0.0
    for epoch in range(int(cfg["epochs"])):
        order = torch.randperm(n, generator=order_gen)
        for b in range(steps_per_epoch):
            idx = order[b * bs : (b + 1) * bs]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, cfg["lr"], cfg["warmup"])
            img = model.encode_image(files.pixels_to_input(images[idx]))
            txt = encode_text_trimmed(model, tokens[idx])
            loss = contrastive_loss(img, txt, model.logit_scale.exp(), caption_ids[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            running += float(loss.detach())
            step += 1
            if step % 100 == 0 or step == total:
                log(
                    f"epoch {epoch + 1} step {step}/{total} loss {running / 100 if step % 100 == 0 else loss:.3f} "
                    f"scale {model.logit_scale.exp().item():.1f} ({time.perf_counter() - t1:.0f} s)"
                )
                running = 0.0
    t_train = time.perf_counter() - t1
    model.eval()

    state = {
        k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()
    }
    config = {"model_cfg": model_cfg, "preprocess": files.PREPROCESS_SPEC, "pretraining": cfg}
    write_files(
        out_dir,
        {
            files.WEIGHTS.name: lambda p: save_file(
                state, str(p), metadata={"format": "kmat.phantom-backbone/v1"}
            ),
            files.CONFIG.name: lambda p: p.write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8"),
            files.VOCAB.name: lambda p: p.write_text(
                json.dumps(tokenizer.to_json(), indent=1) + "\n", encoding="utf-8"
            ),
        },
    )
    summary = {
        "corpus_seconds": round(t_corpus, 1),
        "train_seconds": round(t_train, 1),
        "steps": total,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": tokenizer.vocab_size,
        "weights_bytes": (out_dir / files.WEIGHTS.name).stat().st_size,
        "threads": torch.get_num_threads(),
        "cpu_seconds": round(time.process_time() - cpu0, 1),
    }
    log(json.dumps(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kmat.backbones.phantom.pretrain", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, default=files.HERE, help="folder for the three files (default: the package)"
    )
    for key, value in DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    cfg = {k: getattr(args, k) for k in DEFAULTS}
    pretrain(args.out, cfg, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
