"""Offline model folders for the backbone tests: open_clip ``local-dir:`` layouts with random weights.

``write_biomedclip_dir`` writes BiomedCLIP's open_clip config (METHOD.md: timm ViT-B/16 image tower,
PubMedBERT text tower with an MLP projection and CLS pooling, context 256, embedding 512, CLIP mean/std),
a hand-written ``BertConfig`` and the small WordPiece vocabulary of ``tests/fixtures``; ``tiny=True`` shrinks
both towers to the same kinds of modules at toy sizes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

VOCAB = Path(__file__).resolve().parent / "wordpiece_vocab.txt"
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def biomedclip_config(tiny: bool = False) -> dict[str, Any]:
    """BiomedCLIP's open_clip_config.json (or a toy-size one with the same tower kinds)."""
    vision = {
        "timm_model_name": "vit_base_patch16_224",
        "timm_model_pretrained": False,
        "timm_pool": "",
        "timm_proj": "linear",
        "image_size": 224,
    }
    if tiny:
        vision.update(timm_model_name="vit_tiny_patch16_224")
    return {
        "model_cfg": {
            "embed_dim": 32 if tiny else 512,
            "vision_cfg": vision,
            "text_cfg": {
                "hf_model_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                "hf_tokenizer_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                "hf_proj_type": "mlp",
                "hf_pooler_type": "cls_last_hidden_state_pooler",
                "context_length": 256,
            },
        },
        "preprocess_cfg": {"mean": CLIP_MEAN, "std": CLIP_STD},
    }


def bert_config(tiny: bool = False) -> Any:
    """PubMedBERT's architecture (BERT base, uncased, 30522 tokens) as a hand-written BertConfig; ``tiny``:
    the same architecture at toy sizes."""
    from transformers import BertConfig

    toy = {"vocab_size": 320, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
    base = {"vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12}
    sizes = {**toy, "intermediate_size": 64} if tiny else {**base, "intermediate_size": 3072}
    return BertConfig(
        **sizes,
        max_position_embeddings=512,
        type_vocab_size=2,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
        pad_token_id=0,
    )


def write_biomedclip_dir(folder: Path, *, tiny: bool = False) -> Path:
    """Write a weight-less BiomedCLIP-style ``local-dir:`` folder (kmat builds it with seeded random init)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(biomedclip_config(tiny), indent=2))
    bert_config(tiny).save_pretrained(folder)
    shutil.copy(VOCAB, folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 512})
    )
    return folder


def native_config(*, context_length: int = 32, **text: Any) -> dict[str, Any]:
    """A toy open_clip CLIP config with open_clip's native text transformer (SimpleTokenizer vocabulary)."""
    text_cfg = {"context_length": context_length, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 2}
    text_cfg.update(text)
    return {
        "model_cfg": {
            "embed_dim": 24,
            "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
            "text_cfg": text_cfg,
        },
        "preprocess_cfg": {"mean": CLIP_MEAN, "std": CLIP_STD},
    }


def write_native_dir(folder: Path, **text: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(native_config(**text), indent=2))
    return folder
