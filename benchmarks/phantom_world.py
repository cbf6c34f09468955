"""Measure the phantom world: zero-shot and linear-probe accuracy of the phantom backbone, generation time.

    python benchmarks/phantom_world.py [--weights FILE] [--seed 0] [--out DIR]

On the test split of each modality it reports
  * zero-shot accuracy / macro-F1 with the prompt "a <modality words> image of <class name>.";
  * zero-shot with the class-description prototypes (mean of the normalised description embeddings),
    bare ("<description>") and with the modality words ("<modality>: <description>", the anchors K-MaT
    uses by default), a diagnostic of how much the descriptions carry;
  * the share of description tokens (per modality) that the backbone's tokenizer knows;
  * a linear probe (scikit-learn LogisticRegression on standardised frozen image features, C chosen on
    the modality's val split) trained on the modality's train split: the within-modality ceiling;
  * the high-end probe applied to low-end features: how far plain high-end training transfers;
and the time to generate the world into an empty folder. Prints a markdown table; with ``--out DIR`` also
writes ``DIR/phantom_world.md`` and ``DIR/phantom_world.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kmat_cli.registry import get

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


def features(backbone: Any, samples: list, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Normalised image features (N, D) and labels (N,) of ``samples``."""
    from PIL import Image

    feats = []
    for i in range(0, len(samples), batch_size):
        part = samples[i : i + batch_size]
        pixels = torch.stack([backbone.preprocess(Image.open(s.path)) for s in part])
        feats.append(backbone.encode_image(pixels).numpy())
    return np.concatenate(feats), np.array([s.label for s in samples])


def scores(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"acc": 100 * accuracy_score(y, pred), "f1": 100 * f1_score(y, pred, average="macro")}


def probe(train: tuple, val: tuple) -> Any:
    """LogisticRegression on standardised features; C picked by val accuracy (first best on ties)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best, best_acc = None, -1.0
    for c in C_GRID:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
        clf.fit(*train)
        acc = float((clf.predict(val[0]) == val[1]).mean())
        if acc > best_acc:
            best, best_acc = clf, acc
    return best


def prototypes(backbone: Any, task: Any, modality: str, template: str) -> np.ndarray:
    """(K, D) class prototypes: normalised mean of the normalised embeddings of each class's descriptions
    written through ``template`` (placeholders ``{modality}``, the prompt's modality words, and ``{description}``)."""
    desc, words = task.descriptions[modality], task.modalities[modality]
    protos = np.stack(
        [
            backbone.encode_text([template.format(modality=words, description=d) for d in desc[c]])
            .mean(0)
            .numpy()
            for c in task.class_names
        ]
    )
    return protos / np.linalg.norm(protos, axis=1, keepdims=True)


def known_share(backbone: Any, texts: Any) -> float | None:
    """Percent of the word tokens of ``texts`` (lists of strings) in the tokenizer's vocabulary; None for a
    tokenizer without a word vocabulary."""
    tok = backbone.tokenizer
    if not hasattr(tok, "unknown"):
        return None
    from kmat.backbones.phantom.tokenizer import words

    tokens = [w for group in texts for t in group for w in words(t)]
    unknown = sum(len(tok.unknown(t)) for group in texts for t in group)
    return 100.0 * (1 - unknown / len(tokens))


def measure(task: Any, backbone: Any) -> dict[str, Any]:
    """All numbers of the report for one task instance and backbone."""
    out: dict[str, Any] = {"backbone": backbone.id, "task_seed": getattr(task, "seed", None)}
    feats = {
        (m, s): features(backbone, task.split(m, s)) for m in ("hi", "lo") for s in ("train", "val", "test")
    }
    with torch.no_grad():
        for m in ("hi", "lo"):
            prompts = [f"a {task.modalities[m]} image of {c}." for c in task.class_names]
            text = backbone.encode_text(prompts).numpy()
            x, y = feats[(m, "test")]
            out[f"zeroshot_{m}"] = scores((x @ text.T).argmax(1), y)
            for key, template in (
                ("descriptions", "{description}"),
                ("prefixed", "{modality}: {description}"),
            ):
                protos = prototypes(backbone, task, m, template)
                out[f"{key}_{m}"] = scores((x @ protos.T).argmax(1), y)
            out[f"known_tokens_{m}"] = known_share(backbone, task.descriptions[m].values())
    for m in ("hi", "lo"):
        clf = probe(feats[(m, "train")], feats[(m, "val")])
        out[f"probe_{m}"] = scores(clf.predict(feats[(m, "test")][0]), feats[(m, "test")][1])
        out[f"probe_{m}"]["C"] = float(clf[-1].C)
        if m == "hi":
            out["probe_hi_on_lo"] = scores(clf.predict(feats[("lo", "test")][0]), feats[("lo", "test")][1])
    return out


def generation_seconds(task_cls: Any, seed: int) -> float:
    """Wall time to generate world ``seed`` into an empty folder (all splits, PNG files, manifest)."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        task_cls(seed=seed, root=tmp).manifest  # noqa: B018 - generates on first access
        return time.perf_counter() - t0


def markdown(r: dict[str, Any]) -> str:
    rows = [
        ('zero-shot, prompt "a <modality> image of <class>."', "zeroshot_hi", "zeroshot_lo"),
        ('zero-shot, description prototypes "<description>"', "descriptions_hi", "descriptions_lo"),
        ('zero-shot, description prototypes "<modality>: <description>"', "prefixed_hi", "prefixed_lo"),
        ("linear probe, trained on the same modality", "probe_hi", "probe_lo"),
        ("linear probe trained on high-end, tested on low-end", None, "probe_hi_on_lo"),
    ]
    lines = [
        f"Backbone `{r['backbone']}`, task seed {r['task_seed']}, test splits (accuracy %, macro-F1 % in brackets).",
        "",
        "| measure | high-end | low-end |",
        "|---|---|---|",
    ]
    for label, hi, lo in rows:
        cell = ["-" if k is None else f"{r[k]['acc']:.1f} ({r[k]['f1']:.1f})" for k in (hi, lo)]
        lines.append(f"| {label} | {cell[0]} | {cell[1]} |")
    lines += [
        "",
        f"Description tokens in the vocabulary: {_pct(r.get('known_tokens_hi'))} (high-end), "
        f"{_pct(r.get('known_tokens_lo'))} (low-end).",
        "",
        f"Chance: {100 / r['n_classes']:.1f}%. World generation: {r['generation_seconds']:.1f} s "
        f"({r['n_images']} PNG files).",
    ]
    return "\n".join(lines) + "\n"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=None, help="phantom weights file (default: the shipped ones)")
    parser.add_argument("--seed", type=int, default=0, help="task seed (which phantom world)")
    parser.add_argument("--out", type=Path, default=None, help="folder for phantom_world.md and .json")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    task_cls = get("tasks", "phantom")
    r: dict[str, Any] = {"generation_seconds": generation_seconds(task_cls, args.seed)}
    task = task_cls(seed=args.seed)
    r.update(measure(task, get("backbones", "phantom")(weights=args.weights)))
    r["n_classes"] = len(task.class_names)
    r["n_images"] = sum(len(task.split(m, s)) for m in ("hi", "lo") for s in ("train", "val", "test"))
    text = markdown(r)
    print(text)
    if args.out is None:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "phantom_world.md").write_text(text, encoding="utf-8")
    (args.out / "phantom_world.json").write_text(json.dumps(r, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
