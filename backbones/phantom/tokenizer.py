"""A word-level tokenizer with open_clip's interface, for the phantom backbone's small text tower.

Text is lower-cased and split into words (runs of letters and digits) and the punctuation marks ``. , ; :``;
every other character separates words (so ``low-dose`` is ``low dose``). Ids: ``0`` padding, ``1`` start,
``2`` unknown word, then the vocabulary words, and the end token last with the highest id, so open_clip's
``argmax`` pooling finds it. ``tok(texts, context_length=None) -> LongTensor (N, context_length)``: start,
words, end, zero padding; a text too long is cut and its end token kept last, as open_clip's tokenizers do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from kmat_cli.api import UsageError, read_json

PAD, START, UNK = "<pad>", "<start>", "<unk>"
END = "<end>"
_SPLIT = re.compile(r"[a-z0-9]+|[.,;:]")


def words(text: str) -> list[str]:
    """The tokens of ``text`` as strings (lower-cased words and punctuation marks)."""
    return _SPLIT.findall(text.lower())


class WordTokenizer:
    """``WordTokenizer(vocab, context_length)``: ``vocab`` lists the words (specials are added around it)."""

    def __init__(self, vocab: Sequence[str], context_length: int = 64) -> None:
        plain = [w for w in vocab if w not in (PAD, START, UNK, END)]
        self.itos: list[str] = [PAD, START, UNK, *plain, END]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise UsageError("tokenizer vocabulary has duplicate words")
        self.context_length = int(context_length)
        self.pad_token_id, self.sot_token_id, self.unk_token_id = 0, 1, 2
        self.eot_token_id = len(self.itos) - 1

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @classmethod
    def from_texts(cls, texts: Iterable[str], context_length: int = 64) -> WordTokenizer:
        """A vocabulary of every token in ``texts``, sorted (deterministic for a given corpus)."""
        seen: set[str] = set()
        for text in texts:
            seen.update(words(text))
        return cls(sorted(seen), context_length)

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        """Read ``{"context_length": n, "vocab": [word, ...]}`` (specials included or not)."""
        path = Path(path)
        try:
            raw = read_json(path)
            return cls(raw["vocab"], raw["context_length"])
        except (AttributeError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(
                f"{path}: not a phantom tokenizer vocabulary ({type(exc).__name__}: {exc})"
            ) from exc

    def to_json(self) -> dict:
        return {"context_length": self.context_length, "vocab": self.itos}

    def encode(self, text: str) -> list[int]:
        """Ids of the words of ``text``, without start/end tokens (unknown words -> ``UNK``)."""
        return [self.stoi.get(w, self.unk_token_id) for w in words(text)]

    def unknown(self, text: str) -> list[str]:
        """The words of ``text`` that are not in the vocabulary."""
        return [w for w in words(text) if w not in self.stoi]

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.LongTensor:
        if isinstance(texts, str):
            texts = [texts]
        n = int(context_length or self.context_length)
        out = torch.full((len(texts), n), self.pad_token_id, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [*[self.sot_token_id, *self.encode(text)][: n - 1], self.eot_token_id]
            out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        return out
