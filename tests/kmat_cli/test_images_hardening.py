"""Hardening of image decoding, printed text and the feature cache: DICOM decompression bombs, user text shown
literally by rich, a read-only feature cache, damaged cache shards and hash memos."""

from __future__ import annotations

import json
import struct
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from faults import cli, custom_task, png, run_folders, train_args

pytestmark = pytest.mark.usefixtures("no_progress")

pydicom = pytest.importorskip("pydicom")

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


# ----------------------------------------------------------------------------------------- DICOM bombs
def _meta(transfer_syntax: str) -> Any:
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    return meta


def _header(rows: int, cols: int, frames: int | None) -> Any:
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.Rows, ds.Columns = rows, cols
    if frames is not None:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    return ds


def lying_dicom(path: Path, rows: int, cols: int, frames: int | None) -> Path:
    """An explicit VR little endian file whose header claims ``frames x rows x cols`` 8-bit pixels while its
    pixel data holds 64 bytes."""
    from pydicom.dataset import FileDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = FileDataset(str(path), _header(rows, cols, frames), file_meta=_meta(ExplicitVRLittleEndian))
    ds.PixelData = bytes(64)
    ds.save_as(path, enforce_file_format=True)
    return path


def deflated_bomb(path: Path, rows: int, cols: int) -> Path:
    """A Deflated Explicit VR Little Endian file with complete ``rows x cols`` 8-bit pixel data, all zero:
    a few hundred KB on disk however large the image (written as a stream, never held in memory)."""
    from pydicom.filebase import DicomBytesIO, DicomFileLike
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, _header(rows, cols, None))
    pixels = rows * cols
    element = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, pixels)
    z = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    with open(path, "wb") as handle:
        handle.write(bytes(128) + b"DICM")
        meta = DicomFileLike(handle)
        meta.is_little_endian, meta.is_implicit_VR = True, False
        write_file_meta_info(meta, _meta(DeflatedExplicitVRLittleEndian))
        handle.write(z.compress(body.getvalue() + element))
        block = bytes(1 << 22)
        for start in range(0, pixels, len(block)):
            handle.write(z.compress(block[: min(len(block), pixels - start)]))
        handle.write(z.flush())
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    return {
        "frames": lying_dicom(folder / "frames.dcm", 64, 64, 10**7),
        "tiny-frames": lying_dicom(folder / "tiny-frames.dcm", 1, 1, 10**7),  # 10^7 values: under the limit
        "pixels": lying_dicom(folder / "pixels.dcm", 16384, 16384, None),
        "deflated": deflated_bomb(folder / "deflated.dcm", 16384, 16384),
    }


@pytest.mark.parametrize("kind", ["frames", "tiny-frames", "pixels", "deflated"])
def test_dicom_bombs_are_refused_from_the_header_fast_and_small(bombs: dict[str, Path], kind: str) -> None:
    from kmat_cli.images import ImageError, load_frames

    path = bombs[kind]
    assert path.stat().st_size < 1 << 20  # a small file asking for 10^7 frames or 268 megapixels
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ImageError) as info:
            load_frames(path)
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 2.0, f"{seconds:.2f} s"
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB"
    message = str(info.value)
    assert "\n" not in message
    if kind == "tiny-frames":  # within the limit: pydicom finds the pixel data short, without a frame list
        assert message.startswith(f"{path}: cannot decode DICOM pixel data (The number of bytes")
    else:
        assert message.startswith(f"{path}: DICOM header asks for ") and "KMAT_MAX_DICOM_SAMPLES" in message


def test_dicom_limit_is_configurable_and_ordinary_files_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydicom.data import get_testdata_file
    from pydicom.uid import ExplicitVRLittleEndian

    from kmat_cli.errors import UsageError
    from kmat_cli.images import DICOM_LIMIT_ENV, ImageError, dicom_sample_limit, load_frames, load_image

    assert dicom_sample_limit() == 2 * 89_478_485  # where Pillow refuses an image
    two_frames = get_testdata_file("SC_rgb_rle_2frame.dcm")  # 2 frames x 100 x 100 x 3 = 60,000 values
    monkeypatch.setenv(DICOM_LIMIT_ENV, "60000")
    assert len(load_frames(two_frames)) == 2
    monkeypatch.setenv(DICOM_LIMIT_ENV, "59999")
    with pytest.raises(ImageError, match=r"2 frame\(s\) x 100 x 100 x 3 sample\(s\) = 60,000"):
        load_frames(two_frames)
    assert len(load_frames(two_frames, "first")) == 1  # only frame 0 is decoded: 30,000 values
    monkeypatch.setenv(DICOM_LIMIT_ENV, "many")
    with pytest.raises(UsageError, match=DICOM_LIMIT_ENV):
        dicom_sample_limit()
    monkeypatch.delenv(DICOM_LIMIT_ENV)
    # a real deflated file still decodes, to the same pixels as its explicit VR little endian copy
    deflated = get_testdata_file("image_dfl.dcm")
    ds = pydicom.dcmread(deflated)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(tmp_path / "plain.dcm", enforce_file_format=True)
    assert np.array_equal(np.asarray(load_image(deflated)), np.asarray(load_image(tmp_path / "plain.dcm")))


def test_dicom_bomb_is_an_error_row_in_predict(tmp_path: Path, bombs: dict[str, Path], trained: Path) -> None:
    images = tmp_path / "in"
    png(images / "ok.png", 1)
    for kind in ("frames", "deflated"):
        (images / f"{kind}.dcm").symlink_to(bombs[kind])
    out = tmp_path / "p.jsonl"
    result = cli("predict", images, "--run", trained, "--output", out, "--format", "jsonl")
    assert result.code == 0, result.err
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["ok.png"]["error"] is None and rows["ok.png"]["label"] is not None
    for kind in ("frames", "deflated"):
        assert "DICOM header asks for" in rows[f"{kind}.dcm"]["error"]
        assert rows[f"{kind}.dcm"]["label"] is None


# ------------------------------------------------------------------------------------------- shared run
BRACKETED = ["nevus [benign]", "[/]"]


@pytest.fixture(scope="module")
def bracket_task(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A custom task whose class names are rich markup (``[/]`` cannot be a folder: labels come from CSVs)."""
    folder = tmp_path_factory.mktemp("brackets")
    n = 0
    for modality in ("hi", "lo"):
        lines = ["path,label,split"]
        for split, count in (("train", 2), ("val", 1), ("test", 1)):
            for label in range(len(BRACKETED)):
                for _ in range(count):
                    n += 1
                    png(folder / modality / f"{n}.png", n)
                    lines.append(f"{n}.png,{label},{split}")
        (folder / modality / "labels.csv").write_text("\n".join(lines) + "\n")
    return custom_task(folder, BRACKETED, data={"hi": "hi/labels.csv", "lo": "lo/labels.csv"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, bracket_task: Path) -> Path:
    """A short run of the bracketed task, under an output folder whose path holds rich markup too."""
    out = tmp_path_factory.mktemp("runs") / "x[" / "y]"
    result = cli(*train_args(bracket_task, out))
    assert result.code == 0, result.err
    [folder] = run_folders(out)
    return folder


# ------------------------------------------------------------------------------------------ feature cache
class TinyTower:
    """A deterministic 8x8-pixel linear image tower to 6-d features; counts the images it encodes."""

    id = "tiny-tower-v1"
    embed_dim = 6
    preprocess_spec: ClassVar[dict] = {
        "image_size": 8,
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
        "resize": "squash",
    }

    def __init__(self) -> None:
        import torch

        self.weight = torch.randn(3 * 8 * 8, 6, generator=torch.Generator().manual_seed(0))
        self.device = torch.device("cpu")
        self.calls = 0

    def preprocess(self, image: Any) -> Any:
        import torch

        arr = np.asarray(image.convert("RGB").resize((8, 8)), dtype=np.float32) / 255.0
        return (torch.from_numpy(arr).permute(2, 0, 1) - 0.5) / 0.25

    def encode_image(self, pixels: Any) -> Any:
        import torch.nn.functional as F

        self.calls += len(pixels)
        return F.normalize(pixels.flatten(1) @ self.weight, dim=-1)


def _features(paths: list[Path], cache: Path, tower: TinyTower | None = None) -> Any:
    from kmat_cli.features import image_features

    return image_features(tower or TinyTower(), paths, cache_dir=cache, progress=False)


def _warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("kmat: warning: ")]


DAMAGE = ["zero-rows", "int-dtype", "wrong-dim", "extra-row", "nan"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_shard_is_recomputed_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    paths = [png(tmp_path / "img" / f"{i}.png", i) for i in range(5)]
    cache = tmp_path / "cache"
    fresh = _features(paths, cache)
    [shard] = (cache / "features").glob("*/*.safetensors")
    with safe_open(str(shard), "pt") as f:
        meta, table = f.metadata(), f.get_tensor("features")
    if damage == "zero-rows":
        table[1:3] = 0.0
    elif damage == "int-dtype":
        table = (table * 1000).to(torch.int32)
    elif damage == "wrong-dim":
        table = table[:, :4].contiguous()
    elif damage == "extra-row":
        table = torch.cat([table, table[:1]])
    else:
        table[0, 0] = float("nan")
    save_file({"features": table}, str(shard), metadata=meta)
    capsys.readouterr()
    tower = TinyTower()
    again = _features(paths, cache, tower)
    assert tower.calls == len(paths), "the damaged shard's features were not computed again"
    assert again.shape == fresh.shape and torch.allclose(again, fresh, atol=1e-6)
    [line] = _warnings(capsys.readouterr().err)
    assert str(shard) in line and "damaged feature-cache shard" in line
    assert not shard.exists()  # removed: the next run reads the recomputed shard, silently
    tower = TinyTower()
    assert torch.allclose(_features(paths, cache, tower), fresh, atol=1e-6) and tower.calls == 0
    assert not _warnings(capsys.readouterr().err)


def test_shard_problem_names_what_is_wrong() -> None:
    import torch

    from kmat_cli.features import shard_problem

    good = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
    assert shard_problem(good, 3, 4) is None
    assert shard_problem(good.half(), 3, 4) is None  # any floating dtype
    assert "not floating point" in str(shard_problem(good.to(torch.int64), 3, 4))
    assert "expected (2, 4)" in str(shard_problem(good, 2, 4))
    assert "expected (3, 5)" in str(shard_problem(good, 3, 5))
    assert "expected (3, 4)" in str(shard_problem(good[None], 3, 4))
    assert "NaN or inf" in str(shard_problem(good.index_fill(0, torch.tensor([1]), float("inf")), 3, 4))
    assert "1 of 3 rows are not unit vectors" in str(
        shard_problem(good.index_fill(0, torch.tensor([2]), 0), 3, 4)
    )
    assert "1 of 3 rows" in str(shard_problem(good * torch.tensor([[1.0], [1.0], [1e-4]]), 3, 4))


@pytest.mark.parametrize("memo", ["[]", '"text"', "3", '{"x": 5, "y": [1, 2]}', '{"a": [1, 2, 3]}', "{"])
def test_hash_memo_of_the_wrong_type_is_ignored_and_rebuilt(tmp_path: Path, memo: str) -> None:
    import torch

    paths = [png(tmp_path / "img" / f"{i}.png", i) for i in range(3)]
    cache = tmp_path / "cache"
    fresh = _features(paths, cache)
    (cache / "file-hashes.json").write_text(memo)
    tower = TinyTower()
    assert torch.equal(_features(paths, cache, tower), fresh) and tower.calls == 0
    rebuilt = json.loads((cache / "file-hashes.json").read_text())
    assert sorted(rebuilt) == sorted(str(p.resolve()) for p in paths)


def test_hash_memo_of_the_wrong_type_through_the_cli(tmp_path: Path, fresh_cache: Path) -> None:
    task = custom_task(tmp_path / "task", per_split={"train": 2})
    fresh_cache.mkdir(parents=True)
    (fresh_cache / "file-hashes.json").write_text("[]")
    result = cli(*train_args(task, tmp_path / "runs"))
    assert result.code == 0, result.err
    assert isinstance(json.loads((fresh_cache / "file-hashes.json").read_text()), dict)


@pytest.fixture
def freeze(read_only: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``freeze(cache, how)``: every write into ``cache`` fails, by permissions (every folder read-only for
    a normal user; EACCES simulated for root, who ignores permissions) or with EROFS from the cache's
    writers, as a read-only mount gives."""
    import errno
    import os

    import kmat_cli.features as features

    locked: list[Path] = []

    def make(cache: Path, how: str) -> None:
        if how == "erofs":

            def refuse(dest: Any, *args: Any, **kwargs: Any) -> None:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dest))

            monkeypatch.setattr(features, "write_with", refuse)
            monkeypatch.setattr(features, "write_json", refuse)
            return
        if os.geteuid() != 0:
            for folder in sorted(p for p in cache.rglob("*") if p.is_dir()):
                folder.chmod(0o555)
                locked.append(folder)
        read_only(cache)

    yield make
    for folder in locked:
        folder.chmod(0o755)


@pytest.mark.parametrize("how", ["permissions", "erofs"])
def test_read_only_cache_never_fails_training(
    tmp_path: Path, fresh_cache: Path, freeze: Any, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    from kmat_cli.registry import get

    task = custom_task(tmp_path / "task", per_split={"train": 2})
    first = cli(*train_args(task, tmp_path / "runs1"))
    assert first.code == 0, first.err
    (fresh_cache / "file-hashes.json").unlink()  # only the memo (an optimisation) has to be written
    before = sorted(fresh_cache.rglob("*"))
    freeze(fresh_cache, how)
    tower = get("backbones", "phantom")

    def no_tower(self: Any, pixels: Any) -> Any:
        raise AssertionError("features present in the read-only cache were computed again")

    with monkeypatch.context() as patch:
        patch.setattr(tower, "encode_image", no_tower)
        present = cli(*train_args(task, tmp_path / "runs2"))
    assert present.code == 0, present.err
    [line] = _warnings(present.err)
    assert "content-hash memo not saved" in line and "file-hashes.json" in line
    # features absent: computed in memory, one warning line, the run finishes as with a writable cache
    other = custom_task(tmp_path / "other", per_split={"train": 2})
    for i, image in enumerate(sorted((tmp_path / "other").rglob("*.png"))):
        png(image, 1000 + i)  # content the cache has never seen
    absent = cli(*train_args(other, tmp_path / "runs3"))
    assert absent.code == 0, absent.err
    assert [w for w in _warnings(absent.err) if "computed in memory for this run" in w]
    assert all(line.startswith("kmat: ") for line in absent.err.splitlines())
    for runs in ("runs2", "runs3"):
        [run] = run_folders(tmp_path / runs)
        assert json.loads((run / "run.json").read_text())["status"] == "finished"
    assert sorted(fresh_cache.rglob("*")) == before


# ------------------------------------------------------------------------------------ user text in rich
@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps table cells at the terminal width; keep paths whole


def test_data_check_shows_class_names_literally(bracket_task: Path, wide: None) -> None:
    result = cli("data", "check", bracket_task)
    assert result.code == 0, result.err
    cells = [[c.strip() for c in line.split("│")] for line in result.out.splitlines() if "│" in line]
    for modality in ("hi", "lo"):  # per split: train, val, test, total
        assert [modality, "nevus [benign]", "2", "1", "1", "4"] in cells, result.out
    assert cells.count(["", "[/]", "2", "1", "1", "4"]) == 2, result.out


def test_evaluate_shows_a_run_path_with_markup_literally(trained: Path, wide: None) -> None:
    assert "[/y]" in str(trained)  # rich would read a closing tag there
    result = cli("evaluate", trained)
    assert result.code == 0, result.err
    assert str(trained) in result.out and "Hi (high-end test)" in result.out


@pytest.mark.spawns
def test_env_shows_a_cache_path_with_markup_literally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wide: None
) -> None:
    cache = tmp_path / "c[/]" / "[bold]kmat"
    monkeypatch.setenv("KMAT_CACHE", str(cache))
    result = cli("env")
    assert result.code == 0, result.err
    assert str(cache) in result.out


def test_tune_summary_shows_grid_values_and_paths_literally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], wide: None
) -> None:
    from kmat_cli.experiments.tune import Trial, TuneResult, render

    best = Trial(0, {"method.transport": "[/]", "train.lr": 0.01}, {1: 0.5})
    other = Trial(1, {"method.transport": "fgw [bold]", "train.lr": 0.1}, {1: 0.25})
    folder = tmp_path / "t[/x]"
    result = TuneResult(
        "accuracy",
        ["method.transport", "train.lr"],
        [1],
        [best, other],
        best,
        {},
        folder / "tune.csv",
        folder / "best.yaml",
    )
    render(result)
    out = capsys.readouterr().out
    assert "fgw [bold]" in out and "best: method.transport=[/] train.lr=0.01" in out
    assert f"train with: kmat train --config {folder / 'best.yaml'}" in out
