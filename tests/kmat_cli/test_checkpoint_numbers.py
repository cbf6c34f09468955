"""NaN and inf: in cached features, in the image tower's output, in checkpoints, in exported prompts, in the
training loss. Stored numbers are refused with a one-line error naming the file (cached features, only an
optimisation, are computed again with a warning naming the shard); a loss that blows up marks the run failed
(exit 1) with the epoch and what to lower."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from faults import assert_error, cli, custom_task, png, run_folders, status, train_args
from safetensors import safe_open
from safetensors.torch import load_file, save_file

pytestmark = pytest.mark.usefixtures("no_progress")

POISON = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _poison(path: Path, value: float, select: str = "") -> list[str]:
    """Put ``value`` into the first element of every float tensor of a safetensors file whose name starts
    with ``select``, keeping its metadata; returns the tensor names touched."""
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    touched = [k for k, v in tensors.items() if k.startswith(select) and v.is_floating_point()][:1]
    for k in touched:
        tensors[k].view(-1)[0] = value
    save_file(tensors, str(path), metadata=meta)
    return touched


@pytest.mark.parametrize("value", sorted(POISON))
def test_damaged_feature_cache_is_recomputed_naming_the_shard(
    tmp_path: Path, fresh_cache: Path, trained: tuple[Path, Path], value: str
) -> None:
    task, _ = trained
    shards = sorted((fresh_cache / "features").glob("*/*.safetensors"))
    assert shards, "the first run filled the cache"
    for shard in shards:
        _poison(shard, POISON[value])
    result = cli(*train_args(task, tmp_path / "again"))
    assert result.code == 0, result.err
    warned = [line for line in result.lines if line.startswith("kmat: warning: ")]
    assert any(str(shards[0]) in line and "NaN or inf" in line for line in warned), result.err
    [again] = run_folders(tmp_path / "again")
    assert status(again) == "finished"
    for shard in (fresh_cache / "features").glob("*/*.safetensors"):
        assert torch.isfinite(load_file(str(shard))["features"]).all()


def test_nan_from_the_image_tower_is_reported_and_never_cached(
    tmp_path: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backbone that returns NaN for one image: the run names that image; nothing non-finite is cached."""
    from kmat_cli.registry import get

    task = custom_task(tmp_path / "task", per_split={"train": 2})
    cls = get("backbones", "phantom")
    real = cls.encode_image

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        out = real(self, pixels).clone()
        out[-1] = math.nan  # the last image of the batch
        return out

    monkeypatch.setattr(cls, "encode_image", encode)
    result = cli(*train_args(task, tmp_path / "runs"))
    line = assert_error(result, "the image tower gave NaN or inf features")
    assert str(tmp_path / "task" / "hi" / "train") in line
    assert not run_folders(tmp_path / "runs")
    for shard in (fresh_cache / "features").glob("*/*.safetensors"):
        assert torch.isfinite(load_file(str(shard))["features"]).all()


@pytest.mark.parametrize("value", sorted(POISON))
@pytest.mark.parametrize("command", ["evaluate", "export", "resume"])
def test_checkpoint_with_nan_or_inf_is_refused(trained: tuple[Path, Path], command: str, value: str) -> None:
    _, run = trained
    [tensors] = run.glob("checkpoint-*.safetensors")
    before = (run / "prompts.safetensors").read_bytes()
    _poison(tensors, POISON[value], select="method." if command != "resume" else "optim.")
    if command == "resume":  # a finished run is not retrained: make it look killed after its last epoch
        (run / "run.json").write_text(json.dumps({"status": "running", "time": 0}))
        result = cli("train", "--resume", run, "--no-evaluate")
    else:
        result = cli(command, run)
    assert_error(result, tensors, "NaN or inf", notes=command == "resume")  # note: "kmat: resuming RUN"
    assert (run / "prompts.safetensors").read_bytes() == before
    if command == "resume":
        assert status(run) == "failed"


@pytest.mark.parametrize("value", sorted(POISON))
@pytest.mark.parametrize("modality", ["lo", "hi"])
def test_exported_prompts_with_nan_or_inf_are_refused(
    tmp_path: Path, trained: tuple[Path, Path], value: str, modality: str
) -> None:
    _, run = trained
    prompts = run / "prompts.safetensors"
    _poison(prompts, POISON[value], select=f"text_embeddings.{modality}")
    image = png(tmp_path / "x.png", 1)
    for source in (["--run", run], ["--embeddings", prompts]):
        result = cli("predict", image, *source, "--modality", "lo", "--output", tmp_path / "p.csv")
        assert_error(result, prompts, f"text_embeddings.{modality}", "NaN or inf")
        assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize(
    "setting",
    ["train.lr=1.0e+38", "train.warmup_lr=1.0e+38"],  # loss weights this large are out of their range
)
def test_loss_that_becomes_nan_or_inf_fails_the_run(tmp_path: Path, setting: str) -> None:
    task = custom_task(tmp_path / "task", per_split={"train": 2})
    result = cli(*train_args(task, tmp_path / "runs", "--set", setting, "--epochs", 10))  # 1 warm-up epoch
    line = assert_error(result, "lower", code=1, notes=True)
    # the trainer's own check of the loss, or the transport's check of the embeddings it is given
    said = "the training loss became" if "loss became" in line else "non-finite entries (NaN or inf)"
    assert said in line
    [run] = run_folders(tmp_path / "runs")
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and said in record["error"]
    assert not (run / "prompts.safetensors").exists()
