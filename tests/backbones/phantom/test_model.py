"""The phantom backbone: shipped files, tokenizer, open_clip equivalence, vision-only build, zero-shot,
and deterministic pretraining."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kmat.backbones.phantom import PhantomBackbone
from kmat.backbones.phantom import model as files
from kmat.backbones.phantom.pretrain import DEFAULTS, encode_text_trimmed, pretrain
from kmat.backbones.phantom.tokenizer import WordTokenizer, words
from kmat.tasks.phantom import Phantom
from PIL import Image

from kmat_cli.registry import get


@pytest.fixture(scope="module")
def backbone() -> PhantomBackbone:
    return get("backbones", "phantom")()


def test_shipped_files_and_id(backbone: PhantomBackbone) -> None:
    assert files.WEIGHTS.stat().st_size < 5_000_000
    digest = hashlib.sha256(files.WEIGHTS.read_bytes()).hexdigest()
    assert backbone.id == f"phantom@{digest[:10]}"
    assert backbone.embed_dim == 128 and backbone.preprocess_spec["image_size"] == 32
    assert 1.0 < backbone.logit_scale <= 100.0


def test_tokenizer_layout() -> None:
    tok = WordTokenizer(["a", "ring", "scan", "."], context_length=8)
    assert words("A grey low-dose scan.") == ["a", "grey", "low", "dose", "scan", "."]
    ids = tok(["a ring scan.", "a a a a a a a a a a"])
    assert ids.shape == (2, 8) and ids.dtype == torch.long
    assert ids[0].tolist() == [tok.sot_token_id, *tok.encode("a ring scan."), tok.eot_token_id, 0, 0]
    assert ids[1, -1] == tok.eot_token_id  # truncated, end token kept last
    assert int(ids.max()) == tok.eot_token_id == tok.vocab_size - 1  # argmax pooling finds the end token
    assert tok.encode("a polyp") == [tok.stoi["a"], tok.unk_token_id]


def test_encode_text_equals_open_clip(backbone: PhantomBackbone) -> None:
    texts = ["a crisp colour scan image of cyst.", "a faint thin ring with a darker centre.", "hamartoma"]
    with torch.no_grad():
        ref = F.normalize(backbone.model.encode_text(backbone.tokenizer(texts)), dim=-1)
        trimmed = F.normalize(encode_text_trimmed(backbone.model, backbone.tokenizer(texts)), dim=-1)
    assert torch.allclose(backbone.encode_text(texts), ref, atol=1e-5)
    assert torch.allclose(trimmed, ref, atol=1e-5)


def test_vision_only_builds_no_text_tower(backbone: PhantomBackbone) -> None:
    vision = PhantomBackbone(vision_only=True)
    assert vision.tokenizer is None and vision.id == backbone.id
    assert not any(
        name.startswith(("transformer", "token_embedding")) for name, _ in vision.model.named_parameters()
    )
    pixels = torch.randn(3, 3, 32, 32)
    assert torch.allclose(vision.encode_image(pixels), backbone.encode_image(pixels), atol=1e-6)


def test_preprocess_matches_pretraining_input(backbone: PhantomBackbone) -> None:
    sample = Phantom().split("lo", "val")[0]
    img = Image.open(sample.path)
    rgb = np.array(img.convert("RGB"))
    expected = files.pixels_to_input(torch.from_numpy(rgb)[None])[0]
    assert torch.allclose(backbone.preprocess(img), expected, atol=1e-6)


def test_description_words_are_known(backbone: PhantomBackbone) -> None:
    """At least 99% of the description tokens of each modality are in the shipped vocabulary."""
    task = Phantom()
    for m in task.descriptions:
        counts = Counter(w for texts in task.descriptions[m].values() for t in texts for w in words(t))
        known = sum(n for w, n in counts.items() if w in backbone.tokenizer.stoi)
        assert known / sum(counts.values()) >= 0.99, (m, known / sum(counts.values()))


def test_zero_shot_high_end_above_chance(backbone: PhantomBackbone) -> None:
    """Measured on the first 96 high-end test images (12 per class); chance is 1/8."""
    task = Phantom()
    samples = task.split("hi", "test")[:96]
    pixels = torch.stack([backbone.preprocess(Image.open(s.path)) for s in samples])
    prompts = [f"a {task.modalities['hi']} image of {c}." for c in task.class_names]
    pred = (backbone.encode_image(pixels) @ backbone.encode_text(prompts).T).argmax(dim=1)
    acc = (pred == torch.tensor([s.label for s in samples])).float().mean().item()
    assert acc > 0.25, acc


def test_pretraining_is_deterministic(tmp_path: Path) -> None:
    cfg = {**DEFAULTS, "n": 48, "epochs": 1, "batch_size": 16, "warmup": 1, "threads": 1}
    runs = []
    for name in ("a", "b"):
        pretrain(tmp_path / name, cfg, log=lambda _msg: None)
        runs.append({p.name: p.read_bytes() for p in (tmp_path / name).iterdir()})
    assert runs[0] == runs[1] and set(runs[0]) == {files.WEIGHTS.name, files.CONFIG.name, files.VOCAB.name}
    loaded = PhantomBackbone(weights=str(tmp_path / "a" / files.WEIGHTS.name))
    assert loaded.id != PhantomBackbone(vision_only=True).id


def test_random_stand_in_loads_as_the_backbone(tmp_path: Path) -> None:
    a = files.write_random(tmp_path / "a", words=8, context_length=16, seed=5)
    b = files.write_random(tmp_path / "b", words=8, context_length=16, seed=5)
    assert a.read_bytes() == b.read_bytes()  # seeded: the same stand-in every time
    backbone = PhantomBackbone(weights=str(a))
    assert backbone.tokenizer.vocab_size == 12 and backbone.context_length == 16
    text = backbone.encode_text(["w0 w1", "w2"])
    assert text.shape == (2, 128) and torch.isfinite(text).all()
