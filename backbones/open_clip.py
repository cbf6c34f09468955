"""open_clip backbones: BiomedCLIP (the default) and any open_clip model, from the hub or a local folder.

A model is named like open_clip names it:

* ``hf-hub:org/repo``: an open_clip repo on the Hugging Face hub (``open_clip_config.json`` + weights), e.g.
  BiomedCLIP ``hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224``; an HF text tower's config
  and tokenizer come from the repos its config names (``hf_model_name``, ``hf_tokenizer_name``);
* ``local-dir:/path``: an offline folder with ``open_clip_config.json``, the weights
  (``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``; none = seeded random init) and, for HF
  text towers, the text model's ``config.json`` and tokenizer files (``vocab.txt``/``tokenizer.json``,
  ``tokenizer_config.json``); what the folder lacks is looked up in the Hugging Face cache;
* a built-in open_clip architecture (``ViT-B-32``, ``RN50``, ...) with ``pretrained=`` a tag
  (``laion2b_s34b_b79k``), a weights file, or ``"none"`` (random init with seed 0, on purpose: a warning
  line says so); without ``pretrained`` it is an error (no silent random weights).

Files are taken from the local cache first; a missing one is downloaded only when the hub is reachable, and
otherwise a one-line error says how to provide it (see :mod:`kmat.backbones.hub`). With ``vision_only=True``
only the image tower is built (no text tower, tokenizer or text files), as ``kmat predict`` needs.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from kmat.backbones import hub
from kmat.backbones.openclip_adapter import OpenClipBackbone
from torch import nn

from kmat_cli.api import MissingFile, RuntimeFailure, UsageError, read_json, warn

__all__ = ["BIOMEDCLIP", "BiomedCLIP", "OpenCLIP", "build_open_clip", "weights_sha256"]

BIOMEDCLIP = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
WEIGHT_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
    "model.safetensors",
    "pytorch_model.bin",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model")
INIT_SEED = 0
RANDOM = "none"  # backbone.pretrained of a built-in architecture with seeded random weights, on purpose
_HASHES: dict[tuple[str, int, int], str] = {}


# ------------------------------------------------------------------------------------------- resolution
@dataclass
class Source:
    """Where a model comes from: its config, preprocessing, weights and (lazily) its text-side files."""

    id: str
    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any]
    checkpoint: Path | None
    folder: Path | None = None  # local-dir folder
    builtin: str | None = None  # built-in open_clip architecture name
    cache_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text_cfg(self) -> dict[str, Any]:
        return self.model_cfg.get("text_cfg", {})


def weights_sha256(path: Path) -> str:
    """sha256 of a weights file, memoised per (path, size, mtime_ns) within the process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def _read_config(path: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        raw = read_json(path)
    except MissingFile as exc:
        raise UsageError(f"{name}: no open_clip_config.json in {path.parent}") from exc
    cfg = raw.get("model_cfg", raw) if isinstance(raw, dict) else None
    if not isinstance(cfg, dict) or "vision_cfg" not in cfg:
        raise UsageError(f"{path}: expected 'model_cfg' with 'vision_cfg' and 'text_cfg' (open_clip format)")
    return copy.deepcopy(cfg), dict(raw.get("preprocess_cfg", {}))


def _resolve_local(folder: Path, cache_dir: str | None) -> Source:
    name = f"local-dir:{folder}"
    if not folder.is_dir():
        raise UsageError(f"{name}: folder not found")
    model_cfg, pre = _read_config(folder / "open_clip_config.json", name)
    weights = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
    if weights is None:
        found = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
        weights = found[0] if found else None
    if weights is not None:
        ident = f"local-dir:{folder.name}:sha256-{weights_sha256(weights)[:12]}"
    else:
        cfg_hash = hashlib.sha256((folder / "open_clip_config.json").read_bytes()).hexdigest()[:12]
        ident = f"local-dir:{folder.name}:random-seed{INIT_SEED}-{cfg_hash}"
    return Source(ident, model_cfg, pre, weights, folder=folder, cache_dir=cache_dir)


def _resolve_hub(repo: str, cache_dir: str | None) -> Source:
    config = hub.fetch_file(repo, "open_clip_config.json", cache_dir=cache_dir)
    model_cfg, pre = _read_config(config, f"hf-hub:{repo}")
    weights = hub.fetch_first(repo, WEIGHT_FILES[:3], cache_dir=cache_dir)
    return Source(f"hf-hub:{repo}", model_cfg, pre, weights, cache_dir=cache_dir)


def _resolve_builtin(name: str, pretrained: str | None, cache_dir: str | None) -> Source:
    import open_clip
    from open_clip.transform import merge_preprocess_dict

    arch = name.replace("/", "-")
    model_cfg = open_clip.get_model_config(arch)
    if model_cfg is None:
        known = open_clip.list_models()
        close = difflib.get_close_matches(arch, known, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UsageError(
            f"unknown open_clip model '{name}'{hint}; use a built-in name (open_clip.list_models()), "
            f"hf-hub:org/repo or local-dir:/path"
        )
    model_cfg = copy.deepcopy(model_cfg)
    if pretrained is None:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise UsageError(
            f"open_clip model '{arch}' has no weights chosen: set backbone.pretrained to a tag "
            f"({', '.join(tags[:3]) or 'none known'}{', ...' if len(tags) > 3 else ''}) or a weights file, "
            f"or to 'none' for random weights on purpose (e.g. --set backbone.pretrained={tags[0] if tags else 'none'})"
        )
    if pretrained.lower() == RANDOM:
        warn(
            f"open_clip model '{arch}' with random weights (backbone.pretrained: none): "
            "expect chance-level accuracy"
        )
        return Source(f"open_clip:{arch}:random-seed{INIT_SEED}", model_cfg, {}, None, builtin=arch)
    if Path(pretrained).expanduser().is_file():
        path = Path(pretrained).expanduser()
        return Source(
            f"open_clip:{arch}:sha256-{weights_sha256(path)[:12]}", model_cfg, {}, path, builtin=arch
        )
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        raise UsageError(
            f"unknown pretrained tag '{pretrained}' for open_clip model '{arch}'; "
            f"known: {', '.join(tags) or 'none'} (or give a weights file path)"
        )
    if tag_cfg.get("hf_hub"):
        repo, filename = tag_cfg["hf_hub"].rstrip("/"), None
        if not tag_cfg["hf_hub"].endswith("/"):
            repo, filename = tag_cfg["hf_hub"].rsplit("/", 1)
        files = [filename] if filename else list(WEIGHT_FILES[:3])
        weights = hub.fetch_first(repo, files, cache_dir=cache_dir)
    elif tag_cfg.get("url"):
        weights = hub.fetch_url(tag_cfg["url"], cache_dir=cache_dir)
    else:
        raise UsageError(f"pretrained tag '{pretrained}' of '{arch}' has no download location")
    if tag_cfg.get("quick_gelu") and not model_cfg.get("quick_gelu"):
        model_cfg["quick_gelu"] = True  # the weights were trained with QuickGELU
    pre = merge_preprocess_dict({}, tag_cfg)
    return Source(
        f"open_clip:{arch}:{pretrained}", model_cfg, pre, weights, builtin=arch, cache_dir=cache_dir
    )


def resolve(model: str, pretrained: str | None = None, cache_dir: str | None = None) -> Source:
    """Resolve an open_clip model name (``hf-hub:``, ``local-dir:`` or built-in) to a :class:`Source`."""
    if model.startswith("local-dir:"):
        return _resolve_local(Path(model[len("local-dir:") :]).expanduser(), cache_dir)
    if model.startswith("hf-hub:"):
        return _resolve_hub(model[len("hf-hub:") :], cache_dir)
    return _resolve_builtin(model, pretrained, cache_dir)


# ------------------------------------------------------------------------------------------------ build
def _has_any(folder: Path | None, names: tuple[str, ...]) -> bool:
    return folder is not None and any((folder / n).is_file() for n in names)


def _text_model_dir(src: Source) -> str:
    """A local folder holding the HF text tower's ``config.json``."""
    if _has_any(src.folder, ("config.json",)):
        return str(src.folder)
    return str(hub.fetch_snapshot(src.text_cfg["hf_model_name"], ("config.json",), cache_dir=src.cache_dir))


def _tokenizer_dir(src: Source) -> str:
    if _has_any(src.folder, TOKENIZER_FILES):
        return str(src.folder)
    name = src.text_cfg.get("hf_tokenizer_name") or src.text_cfg["hf_model_name"]
    return str(hub.fetch_snapshot(name, cache_dir=src.cache_dir))


class VisionOnly(nn.Module):
    """The image tower of an open_clip model with its logit scale, and nothing of the text side."""

    def __init__(self, visual: nn.Module, logit_scale: torch.Tensor, embed_dim: int | None = None) -> None:
        super().__init__()
        dim = embed_dim if embed_dim is not None else getattr(visual, "output_dim", None)
        self.embed_dim = int(dim) if dim is not None else None  # None: the adapter asks the visual tower
        self.visual = visual
        self.logit_scale = nn.Parameter(logit_scale.detach().clone().reshape(()))

    def encode_image(self, image: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        features = self.visual(image)
        return nn.functional.normalize(features, dim=-1) if normalize else features


def _vision_only(src: Source) -> nn.Module:
    from open_clip.factory import load_state_dict
    from open_clip.model import _build_vision_tower

    cfg = src.model_cfg
    vision_cfg = dict(cfg["vision_cfg"])
    vision_cfg["timm_model_pretrained"] = False
    visual = _build_vision_tower(cfg["embed_dim"], vision_cfg, cfg.get("quick_gelu", False), None)
    scale = torch.tensor(float(cfg.get("init_logit_scale", torch.log(torch.tensor(1 / 0.07)))))
    if src.checkpoint is not None:
        state = load_state_dict(str(src.checkpoint), device="cpu", weights_only=True)
        sub = {k[len("visual.") :]: v for k, v in state.items() if k.startswith("visual.")}
        if not sub:
            raise RuntimeFailure(f"{src.checkpoint}: no 'visual.*' weights (not an open_clip checkpoint)")
        visual.load_state_dict(sub, strict=True)
        scale = state.get("logit_scale", scale)
    return VisionOnly(visual, scale, cfg["embed_dim"])


def _full_model(src: Source) -> nn.Module:
    import open_clip

    cfg = copy.deepcopy(src.model_cfg)
    text_cfg, vision_cfg = cfg.setdefault("text_cfg", {}), cfg["vision_cfg"]
    is_hf = bool(text_cfg.get("hf_model_name"))
    if "multimodal_cfg" in cfg:
        raise UsageError(f"{src.id}: CoCa (captioning) models are not supported as kmat backbones")
    if is_hf:
        text_cfg["hf_model_name"] = _text_model_dir(src)
        text_cfg["hf_model_pretrained"] = False  # the CLIP checkpoint (or the seeded init) sets the weights
    if "timm_model_name" in vision_cfg:
        vision_cfg["timm_model_pretrained"] = False
    custom_text = cfg.pop("custom_text", False) or is_hf
    model_cls = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    model = model_cls(**cfg)
    if src.checkpoint is not None:
        open_clip.load_checkpoint(model, str(src.checkpoint), strict=True, weights_only=True)
    return model


def _tokenizer(src: Source) -> Any:
    import open_clip
    from open_clip.tokenizer import HFTokenizer

    text_cfg = src.text_cfg
    ctx = int(text_cfg.get("context_length", 77))
    kwargs = dict(text_cfg.get("tokenizer_kwargs", {}))
    if text_cfg.get("hf_tokenizer_name") or text_cfg.get("hf_model_name"):
        return HFTokenizer(
            _tokenizer_dir(src), context_length=ctx, tokenizer_mode=text_cfg.get("tokenizer_mode"), **kwargs
        )
    if src.builtin is not None:
        return open_clip.get_tokenizer(src.builtin, context_length=ctx)
    return open_clip.SimpleTokenizer(context_length=ctx, **kwargs)


def _preprocess(src: Source, model: nn.Module) -> tuple[Any, dict[str, Any]]:
    from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

    merged = merge_preprocess_dict(PreprocessCfg(), src.preprocess_cfg)
    size = getattr(model.visual, "image_size", None) or merged["size"]
    size = tuple(size) if isinstance(size, (list, tuple)) else (int(size), int(size))
    merged["size"] = size
    cfg = PreprocessCfg(**merged)
    spec = {
        "image_size": size[0] if size[0] == size[1] else list(size),
        "mean": [float(v) for v in cfg.mean],
        "std": [float(v) for v in cfg.std],
        "resize": cfg.resize_mode,
        "interpolation": cfg.interpolation,
    }
    return image_transform_v2(cfg, is_train=False), spec


def build_open_clip(
    model: str, pretrained: str | None = None, *, cache_dir: str | None = None, vision_only: bool = False
) -> tuple[nn.Module, Any, Any, str, dict[str, Any]]:
    """Resolve and build ``model`` -> (model, tokenizer or None, preprocess, id, preprocess_spec).

    Weights come from the source (seeded random init where it has none); the model is in eval mode."""
    src = resolve(model, pretrained, cache_dir)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)
            net = _vision_only(src) if vision_only else _full_model(src)
        tokenizer = None if vision_only else _tokenizer(src)
    except (UsageError, RuntimeFailure):
        raise
    except Exception as exc:  # config/weights mismatch, unreadable files: one line naming the source
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise RuntimeFailure(
            f"cannot build open_clip model {src.id}: {type(exc).__name__}: {first[:300]}"
        ) from exc
    preprocess, spec = _preprocess(src, net)
    return net.eval(), tokenizer, preprocess, src.id, spec


# ------------------------------------------------------------------------------------------ the plugins
class OpenCLIP(OpenClipBackbone):
    """Any open_clip model: a built-in name with a pretrained tag or file, hf-hub:org/repo, local-dir:/path.

    ``model`` and ``pretrained`` follow open_clip (``pretrained`` is ignored for ``hf-hub:`` and
    ``local-dir:``); a built-in name needs ``pretrained``: a tag, a weights file, or ``"none"`` for seeded
    random weights (with a warning). ``cache_dir`` overrides the Hugging Face cache folder. The backbone
    names ``hf-hub:ORG/NAME`` and a local folder select this backbone with that ``model``.
    """

    def __init__(
        self,
        *,
        model: str = "ViT-B-32",
        pretrained: str | None = None,
        cache_dir: str | None = None,
        vision_only: bool = False,
        device: str = "cpu",
    ) -> None:
        net, tokenizer, preprocess, ident, spec = build_open_clip(
            model, pretrained, cache_dir=cache_dir, vision_only=vision_only
        )
        super().__init__(net, tokenizer, preprocess, id=ident, preprocess_spec=spec, device=device)


class BiomedCLIP(OpenCLIP):
    """BiomedCLIP (ViT-B/16 + PubMedBERT, 512-d), from the hub or an offline local-dir: folder.

    ``model`` is the hub id by default; point it at ``local-dir:/path`` holding open_clip_config.json,
    open_clip_pytorch_model.bin (or .safetensors), the PubMedBERT config.json and tokenizer files.
    """

    def __init__(
        self,
        *,
        model: str = BIOMEDCLIP,
        cache_dir: str | None = None,
        vision_only: bool = False,
        device: str = "cpu",
    ) -> None:
        super().__init__(
            model=model, pretrained=None, cache_dir=cache_dir, vision_only=vision_only, device=device
        )
