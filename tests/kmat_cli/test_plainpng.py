"""The plain-PNG fast path of predict's reader gives exactly the pixels of the Pillow path, and only plain
PNGs take it (kmat_cli/plainpng.py, SplitPreprocess.from_pixels)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from kmat.backbones.phantom import model as phantom
from PIL import Image, PngImagePlugin

from kmat_cli.imagefiles import ImageFiles, SplitPreprocess
from kmat_cli.images import load_frames
from kmat_cli.plainpng import read_plain_png
from kmat_cli.predict import FrameReader

RNG = np.random.default_rng(0)


def noise(*shape: int) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def with_chunk(png: bytes, kind: bytes, body: bytes) -> bytes:
    """``png`` with one more chunk right after IHDR."""
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return png[:33] + chunk + png[33:]


def plain(folder: Path) -> dict[str, Path]:
    """PNGs the fast path must take: grey and RGB, at the model's size and not, with harmless chunks."""
    files = {
        "rgb-32.png": Image.fromarray(noise(32, 32, 3)),
        "grey-32.png": Image.fromarray(noise(32, 32), "L"),
        "rgb-45x61.png": Image.fromarray(noise(45, 61, 3)),
        "grey-70x33.png": Image.fromarray(noise(70, 33), "L"),
    }
    out = {}
    for name, img in files.items():
        img.save(folder / name)
        out[name] = folder / name
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "scan 7")
    Image.fromarray(noise(40, 32, 3)).save(folder / "text.png", pnginfo=info)
    out["text.png"] = folder / "text.png"
    gamma = with_chunk((folder / "rgb-32.png").read_bytes(), b"gAMA", struct.pack(">I", 45455))
    (folder / "gamma.PNG").write_bytes(gamma)
    out["gamma.PNG"] = folder / "gamma.PNG"
    return out


def not_plain(folder: Path) -> dict[str, Path]:
    """PNGs (or PNG bytes) Pillow reads differently from their raw pixels, or that are broken or DICOM."""
    out: dict[str, Path] = {}

    def save(name: str, img: Image.Image, **options: object) -> None:
        img.save(folder / name, **options)
        out[name] = folder / name

    save("rgba.png", Image.fromarray(noise(32, 32, 4), "RGBA"))
    save("grey-alpha.png", Image.fromarray(noise(32, 32, 2), "LA"))
    save("palette.png", Image.fromarray(noise(32, 32, 3)).convert("P"))
    save("sixteen-bit.png", Image.fromarray(RNG.integers(0, 65535, (32, 32), dtype=np.uint16)))
    save("transparent-grey.png", Image.fromarray(noise(32, 32), "L"), transparency=5)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: Pillow turns the image
    save("exif.png", Image.fromarray(noise(32, 48, 3)), exif=exif)
    xmp = PngImagePlugin.PngInfo()
    xmp.add_itxt("XML:com.adobe.xmp", '<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>')
    save("xmp.png", Image.fromarray(noise(32, 48, 3)), pnginfo=xmp)
    base = (folder / "rgba.png").read_bytes()
    rgb = _png_bytes(Image.fromarray(noise(32, 32, 3)), folder)
    interlaced = bytearray(rgb)
    interlaced[28] = 1  # the interlace byte of IHDR (its CRC is now wrong as well)
    for name, data in {
        "bad-crc.png": rgb[:-5] + bytes([rgb[-5] ^ 1]) + rgb[-4:],
        "truncated.png": rgb[: len(rgb) // 2],
        "interlaced.png": bytes(interlaced),
        "rgb-named.dcm": rgb,
        "unknown-chunk.png": with_chunk(rgb, b"acTL", b"\0" * 8),
        "not-png.png": base[8:],
    }.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    return out


def _png_bytes(img: Image.Image, folder: Path) -> bytes:
    img.save(folder / "_tmp.png")
    data = (folder / "_tmp.png").read_bytes()
    (folder / "_tmp.png").unlink()
    return data


def pillow_rows(path: Path, preprocess: SplitPreprocess) -> list:
    """What the reader gave before the fast path: each frame through Pillow, then ``preprocess``."""
    return [(frame, preprocess(img)) for frame, img in load_frames(path, "all")]


def test_plain_pngs_take_the_fast_path_with_the_pillow_paths_pixels(tmp_path: Path) -> None:
    preprocess = SplitPreprocess(phantom.preprocess_transform())
    for name, path in plain(tmp_path).items():
        assert read_plain_png(path) is not None, name
        got, want = FrameReader("all")(path, preprocess), pillow_rows(path, preprocess)
        assert len(got) == len(want) == 1 and got[0][0] is want[0][0] is None
        assert got[0][1].dtype == want[0][1].dtype and torch.equal(got[0][1], want[0][1]), name


def test_other_files_take_the_pillow_path_with_its_rows_and_errors(tmp_path: Path) -> None:
    preprocess = SplitPreprocess(phantom.preprocess_transform())
    files = not_plain(tmp_path)
    for name, path in files.items():
        assert read_plain_png(path) is None, name
    dataset = ImageFiles(list(files.values()), FrameReader("all"), preprocess)
    errors = {}
    for path, items in zip(files.values(), dataset.__getitems__(range(len(files))), strict=True):
        (_, _, pixels, error), *more = items
        errors[path.name] = error
        if error is None:
            assert not more and torch.equal(pixels, pillow_rows(path, preprocess)[0][1]), path.name
    assert errors["truncated.png"] and errors["not-png.png"], errors
    assert errors["rgba.png"] is None and errors["exif.png"] is None


def test_keeps_only_what_leaves_an_image_unchanged() -> None:
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    def split(*steps: object) -> SplitPreprocess:
        return SplitPreprocess(Compose([*steps, ToTensor(), Normalize([0.5] * 3, [0.25] * 3)]))

    clip = split(Resize(224, interpolation=InterpolationMode.BICUBIC), CenterCrop(224))
    assert clip.keeps(224, 224) and not clip.keeps(224, 300) and not clip.keeps(256, 256)
    squash = split(Resize((32, 32)))
    assert squash.keeps(32, 32) and not squash.keeps(32, 40)
    assert not split(Resize(32), CenterCrop(32), lambda img: img).keeps(32, 32)  # an unknown step
    assert SplitPreprocess(lambda img: torch.zeros(3, 2, 2)).keeps(2, 2) is False  # no split at all


@pytest.mark.parametrize("size", [(32, 32), (50, 41)])
def test_from_pixels_equals_the_pil_path(size: tuple[int, int]) -> None:
    preprocess = SplitPreprocess(phantom.preprocess_transform())
    pixels = torch.from_numpy(noise(*size, 3)).permute(2, 0, 1).contiguous()
    want = preprocess(Image.fromarray(pixels.permute(1, 2, 0).numpy(), "RGB"))
    assert torch.equal(preprocess.from_pixels(pixels), want)


def test_a_fifo_is_never_waited_on(tmp_path: Path) -> None:
    import os
    import threading

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # no writer: a blocking open would wait forever
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(read_plain_png(fifo)), daemon=True)
    reader.start()
    reader.join(10)
    assert result == [None]
