"""Backbone speed: BiomedCLIP-architecture prompt encoding (full 256-token context vs truncated) and
image-tower throughput.

The model is BiomedCLIP's architecture (ViT-B/16 + PubMedBERT-size BERT, context 256) with random weights,
built offline from a local-dir folder (the same one the tests use), so the numbers are the architecture's,
not the weights'. A step is what a K-MaT training step does to the text tower: encode 2K prompts
(K classes x 2 modalities) with 8 learnable context vectors each (4 MSC + 4 CSC) followed by
"<modality> <class name>.", then backpropagate to the context.

    .venv/bin/python benchmarks/backbone_speed.py --threads 2            # markdown table on stdout
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "backbones"))

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


def _time(fn, reps: int, warmup: int = 1) -> tuple[float, float]:  # noqa: ANN001
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), (min(times))


def text_step(b, texts: list[str], truncate: bool, device: str) -> float:  # noqa: ANN001
    """One forward + backward of the 2K prompts; returns the tokens per prompt actually run."""
    b.truncate_prompts = truncate
    ctx = (torch.randn(len(texts), N_CTX, b.token_width, device=device) * 0.02).requires_grad_()
    out = b.encode_prompts(ctx, texts)
    out.sum().backward()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return float(b._prepared[(tuple(texts), N_CTX, truncate)].embeds.shape[1])


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

    from folders import write_biomedclip_dir

    from backbones.open_clip import BiomedCLIP

    with tempfile.TemporaryDirectory() as tmp:
        b = BiomedCLIP(model=f"local-dir:{write_biomedclip_dir(Path(tmp))}", device=args.device)
    rows = []
    for k in [int(x) for x in args.ks.split(",")]:
        texts = _prompts(k)
        result = {}
        for truncate in (False, True):
            length = text_step(b, texts, truncate, args.device)
            med, best = _time(lambda t=truncate, tx=texts: text_step(b, tx, t, args.device), args.reps)
            result[truncate] = (length, med, best)
        (lf, mf, bf), (lt, mt, bt) = result[False], result[True]
        rows.append(
            f"| {k} | {2 * k} | {int(lf)} | {mf:.3f} ({bf:.3f}) | {int(lt)} | {mt:.3f} ({bt:.3f}) | {mf / mt:.1f}x |"
        )
    size = b.preprocess_spec["image_size"]
    pixels = torch.randn(args.image_batch, 3, size, size)
    med, best = _time(lambda: b.encode_image(pixels), args.reps)
    print(
        f"Backbones: BiomedCLIP architecture, random weights; {date.today()}, {platform.processor() or platform.machine()}, "
        f"{args.device}, torch {torch.__version__}, {args.threads} threads; median (best) of {args.reps}.\n"
    )
    print(
        "| K | prompts (2K) | full tokens | full fwd+bwd s | truncated tokens | truncated fwd+bwd s | speed-up |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(
        f"\nImage tower (ViT-B/16, {size} px), batch {args.image_batch}: {med:.2f} s per batch (best {best:.2f}), "
        f"{args.image_batch / med:.1f} images/s."
    )


if __name__ == "__main__":
    main()
