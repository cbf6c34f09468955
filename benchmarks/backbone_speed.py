"""Backbone speed: BiomedCLIP-architecture prompt encoding (full 256-token context, padded to the longest
prompt, packed without padding) and image-tower throughput.

The model is BiomedCLIP's architecture (ViT-B/16 + PubMedBERT-size BERT, context 256) with random weights,
built offline from a local-dir folder (the same one the tests use), so the numbers are the architecture's,
not the weights'. A step is what a K-MaT training step does to the text tower: encode 2K prompts
(K classes x 2 modalities) with 8 learnable context vectors each (4 MSC + 4 CSC) followed by
"<modality> <class name>.", then backpropagate to the context. The three modes give the same embeddings
(tested in tests/backbones/); the repetitions of the three are interleaved (full, padded, packed, ...).

    .venv/bin/python benchmarks/backbone_speed.py --threads 2            # markdown table on stdout
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from datetime import date
from pathlib import Path

import torch
from _common import biomedclip, interleave, machine, per_rep_ratio

CLASSES = [
    "melanoma",
    "basal cell carcinoma",
    "nevus",
    "seborrheic keratosis",
    "squamous cell carcinoma",
    "actinic keratosis",
]
MODALITIES = ["dermoscopy", "clinical photograph"]
N_CTX = 8  # 4 modality-specific + 4 class-specific context vectors


def _prompts(k: int) -> list[str]:
    return [f"{m} {c}." for m in MODALITIES for c in CLASSES[:k]]


MODES = {"full": (False, False), "padded": (True, False), "packed": (True, True)}  # truncate, pack


def text_step(b, texts: list[str], mode: str, device: str) -> float:
    """One forward + backward of the 2K prompts in ``mode``; returns the tokens per prompt actually run (the
    padded length, or for packed rows their tokens per prompt)."""
    b.truncate_prompts, b.pack_prompts = MODES[mode]
    ctx = (torch.randn(len(texts), N_CTX, b.token_width, device=device) * 0.02).requires_grad_()
    out = b.encode_prompts(ctx, texts)
    out.sum().backward()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    key = {"full": False, "padded": "padded", "packed": True}[mode]
    prep = b._prepared[(tuple(texts), N_CTX, key)]
    if prep.pack is not None:  # packed rows: the tokens run per prompt, on average
        return prep.pack.rows * prep.pack.width / len(texts)
    return float(prep.embeds.shape[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ks", default="3,6")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--image-batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        b = biomedclip(Path(tmp), device=args.device)
    rows = []
    for k in [int(x) for x in args.ks.split(",")]:
        texts = _prompts(k)
        tokens = {m: text_step(b, texts, m, args.device) for m in MODES}
        fns = {m: (lambda m=m, tx=texts: text_step(b, tx, m, args.device)) for m in MODES}
        times = interleave(fns, args.reps)
        med = {m: statistics.median(t) for m, t in times.items()}
        cells = " | ".join(f"{tokens[m]:.1f} | {med[m]:.3f} ({min(times[m]):.3f})" for m in MODES)
        full, padded = (per_rep_ratio(times[m], times["packed"]) for m in ("full", "padded"))
        rows.append(f"| {k} | {2 * k} | {cells} | {full:.1f}x | {padded:.2f}x |")
    size = b.preprocess_spec["image_size"]
    pixels = torch.randn(args.image_batch, 3, size, size)
    image = interleave({"image": lambda: b.encode_image(pixels)}, args.reps)["image"]
    med_image, best_image = statistics.median(image), min(image)
    print(
        f"Backbones: BiomedCLIP architecture, random weights; {date.today()}, {machine(args.device)}, "
        f"{args.device}, {args.threads} threads; median (best) of {args.reps}; load average {os.getloadavg()[0]:.2f}.\n"
    )
    print(
        "| K | prompts (2K) | full tokens | full fwd+bwd s | padded tokens | padded fwd+bwd s "
        "| packed tokens | packed fwd+bwd s | full / packed | padded / packed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(
        f"\nImage tower (ViT-B/16, {size} px), batch {args.image_batch}: {med_image:.2f} s per batch "
        f"(best {best_image:.2f}), {args.image_batch / med_image:.1f} images/s."
    )


if __name__ == "__main__":
    main()
