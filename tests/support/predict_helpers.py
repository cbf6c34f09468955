"""Helpers of the predict tests: the toy model record, a prompts-file writer, the image zoo.

The model is a toy native-tower open_clip CLIP (``tests/support/folders.py``: 32 px ViT, embedding 24)
whose seeded weights are saved in a ``local-dir:`` folder, so the tests can rebuild the very same model
straight from open_clip (``CLIP(**cfg)`` + the weights file) as an independent reference.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from folders import native_config
from PIL import Image
from safetensors.torch import save_file

__all__ = [
    "CLASSES",
    "WEIGHTS",
    "Model",
    "make_zoo",
    "native_config",
    "phantom_prompts_file",
    "write_prompts",
]

CLASSES = ["round nodule", "spiculated mass", "ring lesion"]
WEIGHTS = "open_clip_model.safetensors"


@dataclass
class Model:
    """The toy model's folder, its config, the reference open_clip CLIP and its prompts file."""

    folder: Path
    config: dict[str, Any]
    clip: Any  # open_clip.model.CLIP with the saved weights (text tower included)
    prompts: Path
    embeddings: dict[str, torch.Tensor]
    logit_scale: float
    backbone_id: str


def write_prompts(
    dest: Path,
    embeddings: dict[str, torch.Tensor],
    *,
    backbone_id: str,
    embed_dim: int,
    logit_scale: float,
    preprocess: dict[str, Any],
    backbone_config: dict[str, Any] | None,
    class_names: list[str] = CLASSES,
) -> Path:
    """A prompts.safetensors as DESIGN.md 'Files' describes it, written with safetensors directly."""
    meta = {
        "kmat.format": "kmat.prompts/v1",
        "kmat.class_names": json.dumps(class_names),
        "kmat.backbone": backbone_id,
        "kmat.embed_dim": str(embed_dim),
        "kmat.logit_scale": repr(float(logit_scale)),
        "kmat.preprocess": json.dumps(preprocess, sort_keys=True),
        "kmat.task": "toy",
        "kmat.modalities": json.dumps({"hi": "colour photograph", "lo": "grey scan"}),
        "kmat.version": "test",
    }
    if backbone_config is not None:
        meta["kmat.backbone_config"] = json.dumps(backbone_config)
    tensors = {f"text_embeddings.{m}": e.float().contiguous() for m, e in embeddings.items()}
    save_file(tensors, str(dest), metadata=meta)
    return dest


# ----------------------------------------------------------------------------------------- image zoo
def _noise(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _dicom(src: str) -> Path:
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file(src))


def make_zoo(root: Path) -> dict[str, Any]:
    """Odd images, DICOM files and broken files under ``root``; returns what the tests expect of them."""
    import pydicom

    plain = root / "plain"
    odd = root / "odd"
    broken = root / "broken"
    dicom = root / "dicom"
    for d in (plain, odd, broken, dicom, root / ".hidden-dir", root / "empty-dir"):
        d.mkdir(parents=True)
    # plain 8-bit RGB files: the reference computation decodes them with PIL alone
    Image.fromarray(_noise(40, 50, 1)).save(plain / "a.png")
    Image.fromarray(_noise(64, 48, 2)).save(plain / "b.bmp")
    Image.fromarray(_noise(33, 33, 3)).save(plain / "c.tif")
    Image.fromarray(_noise(30, 45, 4)).save(plain / "d.webp", lossless=True)
    Image.fromarray(_noise(50, 40, 5)).save(plain / "E.JPG", quality=90)
    # odd ones
    Image.fromarray(_noise(20, 30, 6, 1).astype(np.uint16) * 257).save(odd / "grey16.png")
    Image.fromarray(_noise(24, 24, 7)).convert("CMYK").save(odd / "cmyk.jpg")
    Image.fromarray(_noise(24, 24, 8)).convert("P", palette=Image.Palette.ADAPTIVE).save(odd / "palette.png")
    Image.fromarray(_noise(24, 24, 9, 4)).save(odd / "alpha.png")
    rot = Image.fromarray(_noise(20, 40, 10))
    exif = rot.getexif()
    exif[0x0112] = 6
    rot.save(odd / "exif-rotated.jpg", exif=exif.tobytes())
    Image.fromarray(_noise(1, 1, 11)).save(odd / "one-pixel.png")
    big = np.zeros((8000, 8000, 3), dtype=np.uint8)
    big[::97] = 255
    big[:, ::89, 1] = 200
    Image.fromarray(big).save(odd / "huge-8000.png", compress_level=1)
    # broken ones
    (broken / "zero-bytes.png").write_bytes(b"")
    (broken / "text.png").write_text("this is not an image\n")
    full = plain / "E.JPG"
    (broken / "truncated.jpg").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    # DICOM: pydicom's bundled test files, a MONOCHROME1 variant, an extension-less copy
    for name in (
        "CT_small.dcm",
        "MR_small.dcm",
        "SC_rgb_rle_2frame.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "JPEG-lossy.dcm",
    ):
        shutil.copy(_dicom(name), dicom / name)
    ds = pydicom.dcmread(_dicom("MR_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(dicom / "MR_small_mono1.dcm")
    shutil.copy(_dicom("CT_small.dcm"), dicom / "IM0001")
    # skipped: hidden files and folders, other file types; symlink loops and a second link to a folder
    Image.fromarray(_noise(8, 8, 12)).save(root / ".hidden.png")
    Image.fromarray(_noise(8, 8, 13)).save(root / ".hidden-dir" / "inside.png")
    (root / "notes.txt").write_text("not an image")
    (root / "loop").symlink_to(".")
    (plain / "up").symlink_to("..")
    (root / "zz-alias").symlink_to("plain")
    files = [
        "broken/text.png",
        "broken/truncated.jpg",
        "broken/zero-bytes.png",
        "dicom/CT_small.dcm",
        "dicom/IM0001",
        "dicom/JPEG-lossy.dcm",
        "dicom/MR_small.dcm",
        "dicom/MR_small_mono1.dcm",
        "dicom/SC_rgb_jpeg_dcmtk.dcm",
        "dicom/SC_rgb_rle_2frame.dcm",
        "odd/alpha.png",
        "odd/cmyk.jpg",
        "odd/exif-rotated.jpg",
        "odd/grey16.png",
        "odd/huge-8000.png",
        "odd/one-pixel.png",
        "odd/palette.png",
        "plain/E.JPG",
        "plain/a.png",
        "plain/b.bmp",
        "plain/c.tif",
        "plain/d.webp",
    ]
    return {
        "files": files,
        "plain": ["plain/E.JPG", "plain/a.png", "plain/b.bmp", "plain/c.tif", "plain/d.webp"],
        "errors": {
            "broken/text.png": "cannot decode image",
            "broken/truncated.jpg": "truncated",
            "broken/zero-bytes.png": "empty file",
        },
        "no_decoder": "dicom/JPEG-lossy.dcm",
        "frames": {"dicom/SC_rgb_rle_2frame.dcm": [0, 1]},
        "skipped": 6,  # .hidden.png, .hidden-dir, notes.txt, loop and plain/up (loops), zz-alias (walked)
    }


def phantom_prompts_file(
    folder: Path, weights: Path, names: list[str], seed: int = 0
) -> tuple[Any, Path, dict[str, torch.Tensor]]:
    """The full phantom CLIP (image and text towers) of ``weights``, and ``folder/prompts.safetensors``: seeded
    random unit class embeddings of both modalities for ``names``, naming the phantom backbone of ``weights``;
    and the embeddings written."""
    import torch.nn.functional as F

    from kmat_cli.registry import get

    full = get("backbones", "phantom")(weights=str(weights))
    g = torch.Generator().manual_seed(seed)
    emb = {m: F.normalize(torch.randn(len(names), full.embed_dim, generator=g), dim=-1) for m in ("hi", "lo")}
    prompts = write_prompts(
        folder / "prompts.safetensors",
        emb,
        backbone_id=full.id,
        embed_dim=full.embed_dim,
        logit_scale=full.logit_scale,
        preprocess=full.preprocess_spec,
        backbone_config={"name": "phantom", "weights": str(weights)},
        class_names=names,
    )
    return full, prompts, emb
