"""Diagnose K-MaT on a task: where its anchor targets, prompts and transport put the low-end classes.

    python benchmarks/kmat_diagnostics.py --task phantom --seed 1 [--set KEY=VALUE ...] [--epochs N]
                                          [--template "{modality}: {description}"] [--json FILE]

Works on any task and backbone of the registry (the run config is built as ``kmat train`` builds it, so
``--set`` reaches every key; image features come from the feature cache). It prints

1. **at initialisation** (context vectors at the seed's init): ``mean_k cos(p_hi,k, p_lo,k)`` of the
   description prototypes, bare (``"{description}"``) and through ``--template`` (modality words in front),
   and ``mean_k cos(t_hi,k, t_lo,k)`` of the prompts;
2. the prototypes used as zero-shot classifiers on both test splits (accuracy %), bare and templated;
3. after training K-MaT variants for the seed (``CSC/MSC``: anchor and transport off; ``+ anchor``;
   ``+ transport``; ``+ anchor + transport``, the run's full configuration): the mean distance ``||t_lo,k - t_hi,k||``, the
   mean cosine of low-end test images with their own class's ``t_lo``, the mean ``cos(t_lo,k, p_lo,k)``
   (p of the run's own template), Hi / Lo test accuracy, ``t_lo`` used on high-end test images, and the
   transport plan's trace x K at the trained prompts (K: a plan that matches every class to itself);
4. the low-end ceilings: a linear probe trained on low-end train features (C chosen on low-end val) and the
   class-mean-feature classifier (cosine to the normalised mean train feature of each class);
5. the share of description tokens out of the tokenizer's vocabulary, per modality (backbones whose
   tokenizer can tell: ``tokenizer.unknown(text)``).

Low-end labels are read here (items 2-4): this is a diagnostic of a task, not a way to pick settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
for _path in (HERE.parent, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from phantom_world import probe  # noqa: E402

from kmat_cli import assemble, config, fewshot, runtime, train  # noqa: E402
from kmat_cli.api import MODALITIES  # noqa: E402
from kmat_cli.features import image_features  # noqa: E402
from kmat_cli.methods.base import prototypes, templated  # noqa: E402
from kmat_cli.runconfig import RunConfig  # noqa: E402

BARE = "{description}"
VARIANTS = (
    ("CSC/MSC", ("method.anchor=false", "method.transport=false")),
    ("+ anchor", ("method.transport=false",)),
    ("+ transport", ("method.anchor=false",)),
    ("+ anchor + transport", ()),
)


def mean_cos(a: torch.Tensor, b: torch.Tensor) -> float:
    """mean_k cos(a_k, b_k) of two (K, D) matrices."""
    return float(F.cosine_similarity(a.float(), b.float(), dim=-1).mean())


def accuracy(feats: torch.Tensor, labels: torch.Tensor, classifier: torch.Tensor) -> float:
    """% of rows of ``feats`` whose most similar row of ``classifier`` is their label."""
    pred = (F.normalize(feats.float(), dim=-1) @ F.normalize(classifier.float(), dim=-1).t()).argmax(1)
    return 100.0 * float((pred == labels).double().mean())


class Diagnosis:
    """The run config, its parts and the cached features of every split of both modalities."""

    def __init__(self, task: str, seed: int, sets: Sequence[str], epochs: int | None) -> None:
        flags = {"task.name": task, "train.seed": seed, "train.epochs": epochs, "out": "."}
        self.sets = tuple(sets)
        self.flags = flags
        self.cfg = config.build(flags=flags, sets=self.sets)
        self.device = runtime.start(RunConfig.from_dict(self.cfg).train)
        self.parts = assemble.build_parts(self.cfg, self.device)
        self.task = self.parts.task
        self.backbone = self.parts.backbone
        self.words = dict(self.task.modalities)
        self.feats: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}
        for m in MODALITIES:
            for split in ("train", "val", "test"):
                samples = self.task.split(m, split)
                x = image_features(self.backbone, [s.path for s in samples], progress=False)
                self.feats[(m, split)] = (x, torch.tensor([s.label for s in samples]))

    def descriptions(self, m: str) -> list[list[str]]:
        d = self.parts.descriptions
        if not d:
            raise SystemExit("this task has no descriptions; give --set descriptions=FILE")
        return [list(d[m][c]) for c in self.task.class_names]

    def prototypes(self, template: str) -> dict[str, torch.Tensor]:
        return {
            m: prototypes(self.backbone, templated(self.descriptions(m), template, self.words[m]))
            for m in MODALITIES
        }

    def method(self, extra: Sequence[str] = ()) -> Any:
        """The configured method (with ``extra`` --set items) at the seed's initialisation."""
        cfg = config.build(flags=self.flags, sets=(*self.sets, *extra))
        parts = dataclasses.replace(self.parts, cfg=cfg, transport=assemble.build_transport(cfg))
        return assemble.build_method(parts, seed=int(cfg["train"]["seed"])), cfg

    def trained(self, extra: Sequence[str]) -> tuple[Any, dict[str, Any]]:
        method, cfg = self.method(extra)
        tcfg = cfg["train"]
        shots = fewshot.few_shot(
            self.task.split("hi", "train"), self.task.class_names, int(tcfg["shots"]), int(tcfg["seed"])
        )
        x = image_features(self.backbone, [s.path for s in shots], progress=False)
        y = torch.tensor([s.label for s in shots])
        train.Trainer(method, x, y, tcfg, device=self.device, progress=False).fit()
        return method, cfg


def init_numbers(diag: Diagnosis, template: str) -> dict[str, Any]:
    """Item 1 and 2 of the module docstring."""
    method, _ = diag.method()
    with torch.no_grad():
        t = method.prompts() if hasattr(method, "prompts") else method.text_embeddings()
    out: dict[str, Any] = {"cos_t_hi_lo": mean_cos(t["hi"], t["lo"])}
    for name, tpl in (("bare", BARE), ("templated", template)):
        p = diag.prototypes(tpl)
        out[name] = {
            "template": tpl,
            "cos_p_hi_lo": mean_cos(p["hi"], p["lo"]),
            "cos_t_p": {m: mean_cos(t[m], p[m]) for m in MODALITIES},
            "zeroshot": {m: accuracy(*diag.feats[(m, "test")], p[m]) for m in MODALITIES},
        }
    return out


def trained_numbers(diag: Diagnosis, extra: Sequence[str]) -> dict[str, Any]:
    """Item 3 of the module docstring for one variant."""
    method, cfg = diag.trained(extra)
    with torch.no_grad():
        t = method.text_embeddings()
    (x_lo, y_lo), (x_hi, y_hi) = diag.feats[("lo", "test")], diag.feats[("hi", "test")]
    own = F.cosine_similarity(F.normalize(x_lo.float(), dim=-1), t["lo"][y_lo], dim=-1)
    template = cfg["method"].get("description_template", BARE)
    p_lo = diag.prototypes(template)["lo"]
    out = {
        "sets": list(extra),
        "dist_t_lo_hi": float((t["lo"] - t["hi"]).norm(dim=-1).mean()),
        "cos_lo_images_own_t_lo": float(own.mean()),
        "cos_t_lo_p_lo": mean_cos(t["lo"], p_lo),
        "hi": accuracy(x_hi, y_hi, t["hi"]),
        "lo": accuracy(x_lo, y_lo, t["lo"]),
        "t_lo_on_hi": accuracy(x_hi, y_hi, t["lo"]),
        "plan_trace_x_K": None,
    }
    transport = method.setup.transport
    if transport is not None and getattr(method, "use_transport", False):
        plan = transport.plan(t["hi"].double(), t["lo"].double())
        out["plan_trace_x_K"] = float(plan.trace() * plan.shape[0])
    return out


def ceilings(diag: Diagnosis) -> dict[str, float]:
    """Item 4 of the module docstring."""
    (xtr, ytr), (xva, yva), (xte, yte) = (diag.feats[("lo", s)] for s in ("train", "val", "test"))
    clf = probe((xtr.numpy(), ytr.numpy()), (xva.numpy(), yva.numpy()))
    K = len(diag.task.class_names)
    means = torch.stack([F.normalize(xtr[ytr == k].float(), dim=-1).mean(0) for k in range(K)])
    return {
        "lo_probe": 100.0 * float((clf.predict(xte.numpy()) == yte.numpy()).mean()),
        "lo_class_mean": accuracy(xte, yte, means),
    }


def oov(diag: Diagnosis) -> dict[str, float | None]:
    """Item 5: % of description tokens the tokenizer does not know, per modality (None: cannot tell)."""
    tok = diag.backbone.tokenizer
    if not (hasattr(tok, "unknown") and hasattr(tok, "encode")):
        return {m: None for m in MODALITIES}
    out: dict[str, float | None] = {}
    for m in MODALITIES:
        texts = [d for per in diag.descriptions(m) for d in per]
        total = sum(len(tok.encode(d)) for d in texts)
        out[m] = 100.0 * sum(len(tok.unknown(d)) for d in texts) / max(1, total)
    return out


def report(r: dict[str, Any]) -> str:
    i = r["init"]
    lines = [
        f"task {r['task']}, seed {r['seed']}, sets {' '.join(r['sets']) or '-'}",
        "",
        f"at init: mean cos(t_hi, t_lo) {i['cos_t_hi_lo']:.3f}",
    ]
    for name in ("bare", "templated"):
        b = i[name]
        lines.append(
            f"  prototypes {name:9s} {b['template']!r}: mean cos(p_hi, p_lo) {b['cos_p_hi_lo']:.3f}; "
            f"as classifiers Hi {b['zeroshot']['hi']:.1f} Lo {b['zeroshot']['lo']:.1f}; "
            f"cos(t, p) hi {b['cos_t_p']['hi']:.3f} lo {b['cos_t_p']['lo']:.3f}"
        )
    lines += ["", "after training (test accuracy %):"]
    for label, v in r["trained"].items():
        trace = "-" if v["plan_trace_x_K"] is None else f"{v['plan_trace_x_K']:.2f}"
        lines.append(
            f"  {label:22s} Hi {v['hi']:5.1f} Lo {v['lo']:5.1f} | t_lo on hi {v['t_lo_on_hi']:5.1f} | "
            f"||t_lo-t_hi|| {v['dist_t_lo_hi']:.3f} | cos(lo img, own t_lo) {v['cos_lo_images_own_t_lo']:.3f} | "
            f"cos(t_lo, p_lo) {v['cos_t_lo_p_lo']:.3f} | plan trace x K {trace}"
        )
    c, o = r["ceilings"], r["oov"]
    fmt = {m: "n/a" if o[m] is None else f"{o[m]:.1f} %" for m in MODALITIES}
    lines += [
        "",
        f"low-end ceilings: linear probe {c['lo_probe']:.1f}, class-mean features {c['lo_class_mean']:.1f}",
        f"description tokens out of vocabulary: high-end {fmt['hi']}, low-end {fmt['lo']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="phantom")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="config override KEY=VALUE")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's)")
    parser.add_argument("--template", default="{modality}: {description}", help="templated prototypes")
    parser.add_argument("--no-train", action="store_true", help="skip the trained variants (item 3)")
    parser.add_argument("--json", type=Path, default=None, help="also write every number to this file")
    args = parser.parse_args(argv)
    diag = Diagnosis(args.task, args.seed, args.sets, args.epochs)
    r: dict[str, Any] = {"task": args.task, "seed": args.seed, "sets": args.sets}
    r["init"] = init_numbers(diag, args.template)
    r["trained"] = {} if args.no_train else {label: trained_numbers(diag, extra) for label, extra in VARIANTS}
    r["ceilings"] = ceilings(diag)
    r["oov"] = oov(diag)
    print(report(r))
    if args.json is not None:
        args.json.write_text(json.dumps(r, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
