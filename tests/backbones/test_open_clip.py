"""Loading open_clip backbones: local folders with weights, the Hugging Face cache, and fast offline errors."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from kmat.backbones.open_clip import BIOMEDCLIP, BiomedCLIP, OpenCLIP
from safetensors.torch import save_file

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
