"""The feature cache never fails a run: a damaged shard is recomputed with one warning naming what is wrong, a
hash memo of the wrong type is rebuilt, a read-only cache is read and not written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from faults import SHORT, cli, custom_task, phantom_root, png, run_folders, session_cache, status, train_args

from kmat_cli.features import HASH_MEMO

pytestmark = pytest.mark.usefixtures("no_progress")


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

        self.weight = torch.randn(3 * 8 * 8, 6, generator=torch.Generator().manual_seed(0))
        self.device = torch.device("cpu")
        self.calls = 0

    def preprocess(self, image: Any) -> Any:

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

    paths = [png(tmp_path / "img" / f"{i}.png", i) for i in range(3)]
    cache = tmp_path / "cache"
    fresh = _features(paths, cache)
    (cache / "file-hashes.json").write_text(memo)
    tower = TinyTower()
    assert torch.equal(_features(paths, cache, tower), fresh) and tower.calls == 0
    rebuilt = json.loads((cache / "file-hashes.json").read_text())
    assert sorted(rebuilt) == sorted(str(p.resolve()) for p in paths)


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


@pytest.mark.parametrize("memo", ["[]", "null", '"text"'])
def test_a_damaged_hash_memo_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memo: str) -> None:
    """The hash memo is an optimisation: one holding JSON of the wrong shape is read as empty and rewritten."""
    world, cache = phantom_root(), tmp_path / "cache"
    shutil.copytree(session_cache() / "features", cache / "features")  # no image is encoded again
    (cache / HASH_MEMO).write_text(memo, encoding="utf-8")
    monkeypatch.setenv("KMAT_CACHE", str(cache))
    out = tmp_path / "runs"
    result = cli("train", *SHORT, "--out", out, "--set", f"task.root={world}")
    assert result.code == 0, result.err
    [run] = run_folders(out)
    assert status(run) == "finished"
    rewritten = json.loads((cache / HASH_MEMO).read_text(encoding="utf-8"))
    assert isinstance(rewritten, dict) and len(rewritten) == 16, rewritten  # 2 shots x 8 classes
