"""The backbone a run config names: a task file's default (BiomedCLIP, and offline the phantom backbone named
as the way out), Hugging Face hub ids and model folders as open_clip backbones, a plugin path still a plugin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kmat_runner import cli
from PIL import Image
from short_runs import SHORT_FLAGS

from kmat_cli import config, registry
from kmat_cli.errors import UsageError

pytestmark = pytest.mark.usefixtures("offline_hub")


def _task_file(folder: Path, extra: str = "") -> Path:
    """A custom task YAML over tiny real PNGs (two classes, both modalities, every split)."""
    for modality in ("hi", "lo"):
        for split in ("train", "val", "test"):
            for label, colour in (("a", (200, 30, 30)), ("b", (30, 30, 200))):
                for i in range(2):
                    path = folder / modality / split / label / f"{i}.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.new("RGB", (8, 8), tuple(c + 10 * i for c in colour)).save(path)
    task = folder / "task.yaml"
    task.write_text(
        f"class_names: [a, b]\nmodalities: {{hi: CT, lo: X-ray}}\ndata: {{hi: hi, lo: lo}}\n{extra}"
    )
    return task


# ------------------------------------------------------------------------------------ 1. custom tasks
def test_custom_task_defaults_to_biomedclip_and_offline_names_the_phantom_backbone(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    task = _task_file(tmp_path / "t")
    assert config.build(flags={"task.name": str(task)})["backbone"]["name"] == "biomedclip"
    own = _task_file(tmp_path / "u", "config: {backbone: phantom, train: {shots: 1}}\n")
    assert config.build(flags={"task.name": str(own)})["backbone"]["name"] == "phantom"  # the file's choice
    out = tmp_path / "runs"
    empty = tmp_path / "empty-hf-cache"
    args = ["train", "--task", task, "--out", out, "--set", f"backbone.cache_dir={empty}", *SHORT_FLAGS]
    code, stdout, stderr = cli(*args)
    assert code == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "BiomedCLIP" in stderr and "--backbone phantom" in stderr
    assert not (out / "train").exists() or not any((out / "train").iterdir())  # nothing half-made


# ---------------------------------------------------------------------------------- 3. spellings
def _tiny_open_clip_folder(folder: Path) -> Path:
    """An open_clip model folder (config only: seeded random weights) with a native text tower."""
    folder.mkdir(parents=True)
    model = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model}))
    return folder


def test_hub_ids_and_folders_are_open_clip_backbones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = config.build(flags={"backbone.name": "hf-hub:org/some-clip"})
    assert (cfg["backbone"]["name"], cfg["backbone"]["model"]) == ("open_clip", "hf-hub:org/some-clip")
    folder = _tiny_open_clip_folder(tmp_path / "my-clip")
    monkeypatch.chdir(tmp_path)
    cfg = config.build(flags={"backbone.name": "./my-clip"})
    assert cfg["backbone"]["model"] == f"local-dir:{folder.resolve()}"
    backbone = registry.get("backbones", "open_clip")(
        **{k: v for k, v in cfg["backbone"].items() if k != "name"}
    )
    assert backbone.encode_text(["a b"]).shape == (1, 16)
    # a plugin path keeps meaning a plugin
    with pytest.raises(UsageError, match="cannot import 'no_such_module'"):
        config.build(flags={"backbone.name": "no_such_module:Thing"})
