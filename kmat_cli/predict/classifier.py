"""The model of ``kmat predict``: exported prompts and the image tower they were made with, as a classifier.

The model is the backbone's image tower ``f`` (built with ``vision_only=True``: no text tower) and the
class embeddings ``E`` (K x D) of one modality read from ``prompts.safetensors``:

    p(class | x) = softmax(s * normalize(f(preprocess(x))) @ E^T)        s = kmat.logit_scale
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from kmat_cli import datafiles
from kmat_cli.api import Backbone
from kmat_cli.devices import resolve_device
from kmat_cli.errors import UsageError
from kmat_cli.export import Prompts, read_prompts
from kmat_cli.progress import say
from kmat_cli.runs import Run

__all__ = ["Classifier", "check_match", "load_classifier", "open_classifier"]


@dataclass
class Classifier:
    """An image tower and the exported prompts (embeddings on the tower's device) of one modality:
    ``probabilities(pixels)`` is ``softmax(logit_scale * normalize(f(pixels)) @ embeddings.T)``, the
    logits being :meth:`kmat_cli.export.Prompts.logits`."""

    backbone: Backbone
    prompts: Prompts
    modality: str
    source: Path

    @property
    def class_names(self) -> list[str]:
        return self.prompts.class_names

    @property
    def logit_scale(self) -> float:
        return self.prompts.logit_scale

    @property
    def embeddings(self) -> torch.Tensor:
        """(K, D) float32 class embeddings of :attr:`modality`, on the backbone's device."""
        return self.prompts.embeddings[self.modality]

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """(N, D) image-tower features -> (N, K) float32 class probabilities (on the CPU)."""
        return self.prompts.logits(features, self.modality).softmax(dim=-1).cpu()

    @torch.inference_mode()
    def probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) preprocessed pixels -> (N, K) float32 class probabilities (on the CPU)."""
        return self.classify(self.backbone.encode_image(pixels))


def _backbone_section(prompts_file: Path, metadata: Mapping[str, str], run: Path | None) -> dict[str, Any]:
    """The backbone config section (registry name and options) the embeddings were made with: the run's
    config.yaml (the user's own config: any plugin name), else the file's ``kmat.backbone_config``, else a
    config.yaml beside the file; the last two come with the file and may only name an installed backbone
    with options of the right types (:mod:`kmat_cli.predict.file_backbone`)."""
    from kmat_cli.config import load_yaml
    from kmat_cli.predict.file_backbone import checked_section

    config_file = (run or prompts_file.parent) / Run.CONFIG
    if run is None and "kmat.backbone_config" in metadata:
        section = datafiles.parse_json(
            metadata["kmat.backbone_config"], f"{prompts_file}: kmat.backbone_config"
        )
        return checked_section(section, prompts_file)
    if not config_file.is_file():
        raise UsageError(
            f"{prompts_file}: no kmat.backbone_config metadata and no {Run.CONFIG} beside it; "
            "pass --run RUN (the run folder it was exported from) or re-export it with `kmat export RUN`"
        )
    section = load_yaml(config_file).get("backbone")
    if run is None:
        return checked_section(section, config_file, key="backbone")
    if isinstance(section, str):
        section = {"name": section}
    if not isinstance(section, dict) or not isinstance(section.get("name"), str):
        raise UsageError(f"{config_file}: no backbone name in its backbone config")
    return section


def _build_backbone(section: Mapping[str, Any], device: torch.device, source: Path) -> Backbone:
    """The backbone of ``section`` built vision-only (only the image tower) on ``device``."""
    from kmat_cli.assemble import accepts, construct

    if not accepts("backbones", section, "vision_only"):
        say(f"note: backbone '{section['name']}' has no vision_only option; its text tower is built too")
    try:
        backbone = construct("backbones", section, vision_only=True, device=str(device))
    except TypeError as exc:
        raise UsageError(
            f"{source}: backbone config {dict(section)} does not fit '{section['name']}': {exc}"
        ) from exc
    backbone.to(device)
    return backbone


def check_match(prompts: Prompts, backbone: Backbone, source: Path) -> None:
    """Raise a one-line ``UsageError`` unless the embeddings were made with this backbone: same
    ``kmat.embed_dim`` and embedding width, same ``kmat.backbone`` id, same preprocessing."""
    meta = prompts.metadata
    width = {int(e.shape[-1]) for e in prompts.embeddings.values()}
    dims = width | ({int(meta["kmat.embed_dim"])} if meta.get("kmat.embed_dim", "").isdigit() else set())
    if dims != {int(backbone.embed_dim)}:
        raise UsageError(
            f"{source}: embeddings have dimension {'/'.join(map(str, sorted(dims)))} but backbone "
            f"{backbone.id} gives {backbone.embed_dim}; use the prompts exported with this backbone"
        )
    if prompts.backbone != backbone.id:
        raise UsageError(
            f"{source}: embeddings were made with backbone '{prompts.backbone}' but the backbone built "
            f"for them is '{backbone.id}'; use the matching run (--run) or re-export the prompts"
        )
    mine = json.loads(json.dumps(backbone.preprocess_spec, sort_keys=True))
    if "kmat.preprocess" in meta and prompts.preprocess != mine:
        raise UsageError(
            f"{source}: embeddings expect preprocessing {json.dumps(prompts.preprocess, sort_keys=True)} "
            f"but backbone {backbone.id} has {json.dumps(mine, sort_keys=True)}"
        )


def _check_run_classes(class_names: Sequence[str], run: Path, source: Path) -> None:
    """With ``--run``, the embeddings must be for the run's task: the same classes in the same order (a file
    copied in from another run would label every image with the wrong names). Skipped when the run's task
    cannot be built any more (e.g. its YAML moved): the file's own class names are used then."""
    from kmat_cli.assemble import build_task
    from kmat_cli.config import load_yaml
    from kmat_cli.errors import KmatError

    try:
        expected = list(build_task(load_yaml(run / Run.CONFIG)).class_names)
    except (KmatError, KeyError, TypeError):
        return
    if list(class_names) != expected:
        raise UsageError(
            f"{source}: embeddings are for classes {list(class_names)} but the run's task has {expected}; "
            f"export them again with `kmat export {run}`"
        )


DEFAULT_RUNS = Path("runs") / "train"  # where `kmat train` puts run folders by default


def default_source() -> tuple[Path | None, Path | None]:
    """(run, embeddings) when neither is given: the run under ``./runs/train`` that finished last, else
    ``./prompts.safetensors``, said on stderr; a one-line UsageError saying how to make one otherwise."""
    from kmat_cli import runs

    latest = runs.latest_finished(DEFAULT_RUNS)
    if latest is not None:
        say(f"using {latest.path}, the run that finished last under {DEFAULT_RUNS} (--run RUN to choose)")
        return latest.path, None
    if Path(Run.PROMPTS).is_file():
        say(f"using ./{Run.PROMPTS} (--run RUN or --embeddings FILE to choose)")
        return None, Path(Run.PROMPTS)
    raise UsageError(
        f"no prompts to classify with: no finished run under {DEFAULT_RUNS} and no ./{Run.PROMPTS}; "
        "train one (`kmat train --task phantom`) or pass --run RUN or --embeddings FILE"
    )


def load_classifier(
    *,
    run: str | Path | None = None,
    embeddings: str | Path | None = None,
    modality: str = "lo",
    device: str | torch.device = "auto",
) -> Classifier:
    """Read the embeddings (``RUN/prompts.safetensors`` or ``embeddings``; neither: :func:`default_source`),
    build the matching image tower (vision-only) and check that the two belong together
    (:func:`check_match`). A run folder given as ``embeddings`` is taken as ``run``; an unfinished run is
    refused with the line that resumes it (its prompts would be those of a partly trained model)."""
    from kmat_cli import runs

    if run is not None and embeddings is not None:
        raise UsageError("give one of --run RUN or --embeddings prompts.safetensors, not both")
    if run is None and embeddings is None:
        run, embeddings = default_source()
    if embeddings is not None and runs.is_run(embeddings):  # a run folder given as --embeddings
        run, embeddings = embeddings, None
    run_path = runs.require_finished(run, "predict").path if run is not None else None
    source = run_path / Run.PROMPTS if run_path is not None else runs.prompts_file(embeddings)  # type: ignore[arg-type]  # set when run is not
    if run_path is not None and not source.is_file():
        raise UsageError(f"{run_path}: no {Run.PROMPTS} yet; run `kmat export {run_path}` first")
    try:
        prompts = read_prompts(source)
    except (KeyError, json.JSONDecodeError, ValueError) as exc:
        raise UsageError(f"{source}: incomplete kmat metadata ({type(exc).__name__}: {exc})") from exc
    if modality not in prompts.embeddings:
        known = ", ".join(sorted(prompts.embeddings)) or "none"
        raise UsageError(f"{source}: no embeddings for modality '{modality}' (has: {known})")
    dev = (
        resolve_device(device, option="--device", prefer=("cuda", "mps"))
        if isinstance(device, str)
        else torch.device(device)
    )
    if run_path is not None:
        _check_run_classes(prompts.class_names, run_path, source)
    section = _backbone_section(source, prompts.metadata, run_path)
    backbone = _build_backbone(section, dev, source)
    check_match(prompts, backbone, source)
    on_device = {m: e.float().to(dev) for m, e in prompts.embeddings.items()}
    return Classifier(backbone, replace(prompts, embeddings=on_device), modality, source)


def open_classifier(
    *,
    run: str | Path | None = None,
    embeddings: str | Path | None = None,
    onnx: str | Path | None = None,
    modality: str = "lo",
    device: str | torch.device = "auto",
    threads: int | None = None,
) -> Any:
    """The classifier ``kmat predict``'s options name: a ``classifier.onnx`` run by onnxruntime on the CPU
    (``onnx``, alone: :func:`kmat_cli.predict.onnx.load_onnx_classifier`), else :func:`load_classifier`."""
    if onnx is None:
        return load_classifier(run=run, embeddings=embeddings, modality=modality, device=device)
    if run is not None or embeddings is not None:
        raise UsageError("give only one of --run RUN, --embeddings prompts.safetensors and --onnx MODEL")
    if str(device) not in ("auto", "cpu"):
        raise UsageError(f"--onnx runs on the CPU (onnxruntime); drop --device {device}")
    from kmat_cli.predict.onnx import load_onnx_classifier

    return load_onnx_classifier(onnx, modality=modality, threads=threads)
