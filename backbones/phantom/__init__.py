"""The phantom backbone: a small CLIP-style model pretrained on the phantom world, shipped with kmat.

An open_clip ``CLIP`` (ModifiedResNet image tower at 32 px, 3-layer text transformer with a word-level
tokenizer; see :mod:`kmat.backbones.phantom.model`) pretrained contrastively on captioned phantom images in
which the low-end modality is rare (:mod:`kmat.backbones.phantom.pretrain`), so that, like BiomedCLIP on real
data, its zero-shot accuracy is modest on the high end and weaker on the low end.
"""

from __future__ import annotations

from pathlib import Path

from kmat.backbones.openclip_adapter import OpenClipBackbone
from kmat.backbones.phantom import model as files
from kmat.backbones.phantom.tokenizer import WordTokenizer

__all__ = ["PhantomBackbone"]


class PhantomBackbone(OpenClipBackbone):
    """The phantom world's CLIP-style backbone (embedding 128, token width 128, 32x32 px input).

    ``weights``: a ``.safetensors`` file with ``phantom_config.json`` and ``phantom_vocab.json`` beside it
    (default: the files shipped in this package). ``id`` is ``phantom@`` + the first 10 hex digits of the
    weights file's SHA-256. ``vision_only=True`` builds the image tower alone (no text tower, no tokenizer).
    """

    def __init__(self, *, weights: str | None = None, vision_only: bool = False, device: str = "cpu") -> None:
        path = Path(weights).expanduser() if weights else files.WEIGHTS
        config = files.read_config(path.with_name(files.CONFIG.name))
        net = files.build(config["model_cfg"], vision_only=vision_only)
        files.load_weights(net, path)
        tokenizer = None if vision_only else WordTokenizer.load(path.with_name(files.VOCAB.name))
        super().__init__(
            net.eval(),
            tokenizer,
            files.preprocess_transform(),
            id=f"phantom@{files.weights_hash(path)}",
            preprocess_spec=config["preprocess"],
            device=device,
        )
