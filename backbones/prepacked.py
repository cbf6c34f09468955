"""Frozen linear layers whose weights are packed once for MKL's matrix product (CPU, float32).

A frozen text tower runs the same few prompts through the same ``nn.Linear`` layers at every training step:
``y = x W^T + b`` forward and, since only the input needs a gradient, ``dx = dy W`` backward, with ``x``
only ~100 rows (the prompts' real tokens). At that size MKL spends a good part of each product re-packing
``W``; ``torch.ops.mkl._mkl_linear`` takes a weight packed beforehand for a given row count instead
(measured on BiomedCLIP's BERT: 1.15x faster products, 1.07-1.11x faster K-MaT epochs, values equal up
to float rounding; see benchmarks/README.md, "What was slow").

:func:`convert` turns a module's ``nn.Linear`` layers into :class:`PrepackedLinear` in place (same parameters,
same state dict); they behave exactly as ``nn.Linear`` unless :func:`enabled` is active, and even then pack
only where packing applies and can pay off:

* the weight (and bias) is frozen, float32, on the CPU, MKL is available, autocast is off;
* the input needs a gradient (a training step: every step is packed from the first, so a run resumed
  from a checkpoint computes exactly what the uninterrupted run computed), or the layer has seen the same
  row count ``M = x.numel() / in_features`` (and the same weight storage and version) in
  :data:`_REPEATS` calls in a row without gradient (per-image prompt loops at evaluation; one-off
  encodings never pay for packing). The forward pack is made then, the backward pack (of ``W^T``) at the
  first backward.

A layer keeps the packs of its :data:`_KEEP` latest row counts (a method may alternate two prompt
batches; a caller alternating more with gradient re-packs at every switch, ~0.5 s for BiomedCLIP's text
tower). Each pack costs about the weight's size in memory (BiomedCLIP's text tower: ~325 MB forward, ~325
MB backward); :func:`release` drops them.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PrepackedLinear", "available", "convert", "enabled", "release"]

_state = threading.local()
_REPEATS = 3  # calls in a row at one row count, without gradient, before a layer packs for it
_KEEP = 2  # row counts whose packs a layer keeps


def available() -> bool:
    """MKL's packed-weight linear exists in this torch build."""
    try:
        return bool(torch.backends.mkl.is_available()) and hasattr(torch.ops.mkl, "_mkl_linear")
    except (AttributeError, RuntimeError):
        return False


@contextmanager
def enabled(on: bool = True) -> Iterator[None]:
    """Let :class:`PrepackedLinear` layers use packed weights in this thread while the block runs."""
    previous = getattr(_state, "on", False)
    _state.on = bool(on)
    try:
        yield
    finally:
        _state.on = previous


@dataclass
class _Pack:
    """The packed weights for one ``key`` = (rows, weight storage, weight version)."""

    key: tuple[int, int, int]
    forward: torch.Tensor  # W packed for x W^T
    backward: torch.Tensor | None = None  # W^T packed for dy W, made at the first backward


class _PackedLinear(torch.autograd.Function):
    """y = x W^T + b with the forward pack; dx = dy W with the backward pack (no weight gradients)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, layer: PrepackedLinear, pack: _Pack) -> torch.Tensor:  # type: ignore[override]
        ctx.layer, ctx.pack = layer, pack
        return torch.ops.mkl._mkl_linear(x, pack.forward, layer.weight, layer.bias, pack.key[0])

    @staticmethod
    def backward(ctx, dy: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        layer, pack = ctx.layer, ctx.pack
        weight_t = layer.weight.t()
        if pack.backward is None:
            pack.backward = torch.ops.mkl._mkl_reorder_linear_weight(weight_t.contiguous(), pack.key[0])
        return torch.ops.mkl._mkl_linear(dy, pack.backward, weight_t, None, pack.key[0]), None, None


class PrepackedLinear(nn.Linear):
    """``nn.Linear`` that uses MKL-packed copies of its frozen weight inside :func:`enabled` (module
    docstring); the same function of ``x`` either way, equal up to float rounding."""

    _packs: OrderedDict[tuple[int, int, int], _Pack] | None = None  # newest last
    _seen: tuple[tuple[int, int, int], int] | None = None  # (key, calls in a row) without gradient

    def _packable(self, x: torch.Tensor) -> bool:
        w, b = self.weight, self.bias
        return (
            getattr(_state, "on", False)
            and x.device.type == "cpu"
            and x.dtype == w.dtype == torch.float32
            and not w.requires_grad
            and (b is None or (not b.requires_grad and b.dtype == torch.float32))
            and not torch.is_autocast_enabled("cpu")
            and x.numel() > 0
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._packable(x):
            return F.linear(x, self.weight, self.bias)
        key = (x.numel() // self.in_features, self.weight.data_ptr(), self.weight._version)
        pack = self._pack_for(key, x.requires_grad and torch.is_grad_enabled())
        if pack is None:
            return F.linear(x, self.weight, self.bias)
        return _PackedLinear.apply(x, self, pack)

    def _pack_for(self, key: tuple[int, int, int], grad: bool) -> _Pack | None:
        """The pack for ``key``: kept, made now (module docstring's rules), or None (run unpacked)."""
        if self._packs is None:
            self._packs = OrderedDict()
        packs = self._packs
        if key in packs:
            packs.move_to_end(key)
            return packs[key]
        calls = self._seen[1] + 1 if self._seen is not None and self._seen[0] == key else 1
        self._seen = (key, calls)
        if not grad and calls < _REPEATS:
            return None
        packs[key] = _Pack(key, torch.ops.mkl._mkl_reorder_linear_weight(self.weight, key[0]))
        while len(packs) > _KEEP:
            packs.popitem(last=False)
        return packs[key]


def convert(module: nn.Module) -> int:
    """Turn every layer of exactly type ``nn.Linear`` in ``module`` (itself included) into a
    :class:`PrepackedLinear` in place; returns how many. A no-op where MKL is not available."""
    if not available():
        return 0
    layers = [m for m in module.modules() if type(m) is nn.Linear]
    for layer in layers:
        layer.__class__ = PrepackedLinear
    return len(layers)


def release(module: nn.Module) -> None:
    """Drop the packed weights of every :class:`PrepackedLinear` in ``module``."""
    for m in module.modules():
        if isinstance(m, PrepackedLinear):
            m._packs = None
            m._seen = None
