"""Loading open_clip backbones: local folders with weights, the Hugging Face cache, fast offline errors, and
no model without weights unless random weights are asked for."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from kmat.backbones.open_clip import BIOMEDCLIP, BiomedCLIP, OpenCLIP
from kmat_runner import cli
from safetensors.torch import save_file
from short_runs import SHORT_FLAGS

from kmat_cli import registry
from kmat_cli.api import RuntimeFailure, UsageError

TEXTS = ["round smooth nodule", "a spiculated mass."]


def _save_weights(b: OpenCLIP, dest: Path) -> None:
    state = {k: v.contiguous() for k, v in b.model.state_dict().items()}
    save_file(state, str(dest))


def _perturbed(folder: Path) -> OpenCLIP:
    """A model of ``folder``'s architecture whose weights differ from the seeded init."""
    b = OpenCLIP(model=f"local-dir:{folder}")
    with torch.no_grad():
        for p in b.model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return b


def test_local_dir_weights_are_loaded_and_hashed(native_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(native_dir, folder)
    trained = _perturbed(folder)
    _save_weights(trained, folder / "open_clip_model.safetensors")
    b = OpenCLIP(model=f"local-dir:{folder}")
    assert b.id.startswith("local-dir:model:sha256-") and b.id != OpenCLIP(model=f"local-dir:{native_dir}").id
    assert torch.allclose(b.encode_text(TEXTS), trained.encode_text(TEXTS), atol=1e-6)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(b.encode_image(x), trained.encode_image(x), atol=1e-6)
    vis = OpenCLIP(model=f"local-dir:{folder}", vision_only=True)
    assert torch.allclose(vis.encode_image(x), trained.encode_image(x), atol=1e-6)
    scale = float(trained.model.logit_scale.exp())
    assert scale != pytest.approx(14.2857, abs=1e-3)  # not the init value 1 / 0.07
    assert vis.logit_scale == pytest.approx(scale) and b.logit_scale == pytest.approx(scale)


def _fake_hub_cache(cache: Path, repo: str, files: dict[str, Path]) -> None:
    """The Hugging Face cache layout (models--org--name/{refs/main, snapshots/<commit>/...})."""
    commit = "0" * 40
    base = cache / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, src in files.items():
        shutil.copy(src, snap / name)


def test_hub_model_loads_from_the_hf_cache_offline(
    tiny_biomedclip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An hf-hub: BiomedCLIP-style model whose files (open_clip repo + text-tower repo) are all cached."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "src"
    shutil.copytree(tiny_biomedclip_dir, folder)
    trained = _perturbed(folder)
    _save_weights(trained, folder / "open_clip_model.safetensors")
    cache = tmp_path / "hf"
    bert = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
    _fake_hub_cache(
        cache,
        "kmat-test/biomedclip-tiny",
        {n: folder / n for n in ("open_clip_config.json", "open_clip_model.safetensors")},
    )
    _fake_hub_cache(
        cache, bert, {n: folder / n for n in ("config.json", "vocab.txt", "tokenizer_config.json")}
    )
    b = BiomedCLIP(model="hf-hub:kmat-test/biomedclip-tiny", cache_dir=str(cache))
    assert b.id == "hf-hub:kmat-test/biomedclip-tiny"
    assert torch.allclose(b.encode_text(TEXTS), trained.encode_text(TEXTS), atol=1e-6)


@pytest.mark.parametrize("offline", [True, False])
def test_missing_hub_weights_fail_fast_in_one_line(
    offline: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:  # online mode, but the endpoint refuses connections
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
        monkeypatch.delenv("HTTPS_PROXY", raising=False)
        monkeypatch.delenv("https_proxy", raising=False)
    start = time.perf_counter()
    with pytest.raises(UsageError) as info:  # exit code 2: the user has to provide the files
        BiomedCLIP(cache_dir=str(tmp_path / "empty"))
    assert time.perf_counter() - start < 10
    msg = str(info.value)
    assert "\n" not in msg and BIOMEDCLIP[len("hf-hub:") :] in msg
    assert "--backbone /path/to/folder" in msg and "cache" in msg and "--backbone phantom" in msg


def test_unknown_names_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="did you mean 'ViT-B-32'"):
        OpenCLIP(model="ViT-B-33")
    with pytest.raises(UsageError, match="unknown pretrained tag"):
        OpenCLIP(model="ViT-B-32", pretrained="no-such-tag")
    with pytest.raises(UsageError, match="folder not found"):
        OpenCLIP(model=f"local-dir:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"no open_clip_config\.json"):
        OpenCLIP(model=f"local-dir:{tmp_path / 'empty'}")
    (tmp_path / "empty" / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"x": 1}}))
    with pytest.raises(UsageError, match="open_clip format"):
        OpenCLIP(model=f"local-dir:{tmp_path / 'empty'}")


def test_weights_that_do_not_fit_the_config_fail_in_one_line(native_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(native_dir, folder)
    save_file({"visual.nope": torch.zeros(2)}, str(folder / "open_clip_model.safetensors"))
    with pytest.raises(RuntimeFailure, match="cannot build open_clip model") as info:
        OpenCLIP(model=f"local-dir:{folder}")
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------ 2. open_clip weights
@pytest.mark.usefixtures("offline_hub")
def test_open_clip_without_pretrained_is_an_error_and_none_on_purpose_warns(
    capsys: pytest.CaptureFixture,
) -> None:
    open_clip_backbone = registry.get("backbones", "open_clip")
    with pytest.raises(UsageError, match=r"no weights chosen.*'none' for random weights on purpose") as info:
        open_clip_backbone(model="RN50", vision_only=True)
    assert "\n" not in str(info.value) and "backbone.pretrained" in str(info.value)
    capsys.readouterr()
    from kmat.backbones.open_clip import (
        resolve,  # what the constructor builds from, without the build's seconds
    )

    source = resolve("RN50", "none")
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "random weights" in warning[0] and warning[0].startswith("kmat: warning:")
    assert source.id.startswith("open_clip:RN50:random-seed") and source.checkpoint is None


@pytest.mark.usefixtures("offline_hub")
def test_open_clip_without_pretrained_through_the_cli_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [
        "train",
        "--backbone",
        "open_clip",
        "--set",
        "backbone.model=RN50",
        "--out",
        tmp_path,
        *SHORT_FLAGS,
    ]
    code, stdout, stderr = cli(*args)
    assert code == 2 and stdout == "" and "backbone.pretrained" in stderr
    assert len(stderr.strip().splitlines()) == 1


@pytest.mark.usefixtures("offline_hub")
def test_unreachable_hub_backbone_fails_at_the_hub_not_as_an_unknown_name(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = [
        "train",
        "--backbone",
        "hf-hub:kmat-test/not-cached",
        "--set",
        f"backbone.cache_dir={tmp_path / 'hf'}",
    ]
    code, _, stderr = cli(*args, "--out", tmp_path / "runs", *SHORT_FLAGS)
    assert code == 2 and "hf-hub:kmat-test/not-cached" in stderr and "unknown backbone" not in stderr
    assert "HF_HUB_OFFLINE" in stderr and len(stderr.strip().splitlines()) == 1
    code, _, stderr = cli("train", "--backbone", "./no-such-dir", "--out", tmp_path / "runs", *SHORT_FLAGS)
    assert code == 2 and "folder not found" in stderr and "unknown backbone" not in stderr
