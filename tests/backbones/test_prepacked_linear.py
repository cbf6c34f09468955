"""MKL-packed frozen linear layers (backbones/prepacked.py): the same values and input gradients as
``nn.Linear``, packing only when enabled, repeated, frozen and float32, never serving a stale pack."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from backbones import prepacked
from backbones.openclip_adapter import OpenClipBackbone

pytestmark = pytest.mark.skipif(not prepacked.available(), reason="torch built without MKL")


def _layer(n_in: int = 48, n_out: int = 80, bias: bool = True, seed: int = 0) -> prepacked.PrepackedLinear:
    torch.manual_seed(seed)
    layer = nn.Linear(n_in, n_out, bias=bias).requires_grad_(False)
    assert prepacked.convert(layer) == 1
    return layer


def _value_and_grad(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    leaf = x.clone().requires_grad_()
    with prepacked.enabled():
        y = layer(leaf)
    (y * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
    return y.detach(), leaf.grad


def _truth(layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain ``F.linear`` and autograd on the same weights."""
    leaf = x.clone().requires_grad_()
    y = F.linear(leaf, layer.weight, layer.bias)
    (y * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
    return y.detach(), leaf.grad


@pytest.mark.parametrize("shape", [(37, 48), (3, 11, 48)])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_values_and_input_gradients_equal_linear(shape: tuple[int, ...], bias: bool) -> None:
    layer = _layer(bias=bias)
    x = torch.randn(*shape)
    _value_and_grad(layer, x)  # first call at this shape: plain, remembered
    assert layer._pack is None
    y, g = _value_and_grad(layer, x)  # second: packed, backward pack made
    assert layer._pack is not None and layer._pack.backward is not None
    y_true, g_true = _truth(layer, x)
    assert y.shape == y_true.shape and g.shape == g_true.shape
    torch.testing.assert_close(y, y_true, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g, g_true, rtol=1e-5, atol=1e-5)


def test_no_packing_outside_enabled_trainable_or_autocast() -> None:
    layer = _layer()
    x = torch.randn(20, 48)
    for _ in range(3):
        layer(x)
    assert layer._pack is None  # not enabled

    trainable = _layer()
    trainable.weight.requires_grad_(True)
    leaf = x.clone().requires_grad_()
    with prepacked.enabled():
        for _ in range(3):
            out = trainable(leaf)
    out.sum().backward()
    assert trainable._pack is None and trainable.weight.grad is not None  # weight gradients still flow

    with prepacked.enabled(), torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(3):
            out = layer(x)
    assert layer._pack is None and out.dtype == torch.bfloat16

    double = _layer().double()
    with prepacked.enabled():
        for _ in range(3):
            double(x.double())
    assert double._pack is None


def test_new_row_count_or_changed_weight_never_uses_a_stale_pack() -> None:
    layer = _layer()
    a, b = torch.randn(16, 48), torch.randn(9, 48)
    _value_and_grad(layer, a)
    _value_and_grad(layer, a)
    first = layer._pack
    assert first is not None and first.key[0] == 16
    y, _ = _value_and_grad(layer, b)  # another row count: plain, pack kept until it repeats
    assert layer._pack is first
    torch.testing.assert_close(y, F.linear(b, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)
    _value_and_grad(layer, b)
    assert layer._pack is not first and layer._pack.key[0] == 9

    with torch.no_grad():
        layer.weight.mul_(-2.0)  # in place: the weight's version changes
    for _ in range(3):
        y, g = _value_and_grad(layer, b)
        y_true, g_true = _truth(layer, b)
        torch.testing.assert_close(y, y_true, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(g, g_true, rtol=1e-5, atol=1e-5)
    prepacked.release(layer)
    assert layer._pack is None


def test_convert_keeps_parameters_and_only_plain_linears() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.MultiheadAttention(8, 2), nn.Linear(8, 3))
    before = copy.deepcopy(model.state_dict())
    assert prepacked.convert(model) == 2  # MultiheadAttention's out_proj is a subclass: left alone
    assert type(model[2].out_proj) is not prepacked.PrepackedLinear
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert isinstance(model[0], nn.Linear)


@pytest.mark.parametrize("folder", ["tiny_biomedclip_dir", "native_dir"])  # BERT tower, native tower
def test_backbone_prompts_with_packed_weights_equal_plain(
    folder: str, request: pytest.FixtureRequest
) -> None:
    from backbones.open_clip import OpenCLIP

    b: OpenClipBackbone = OpenCLIP(model=f"local-dir:{request.getfixturevalue(folder)}")
    texts = ["irregular pigmented lesion.", "blue white veil and atypical network.", "lesion."]
    ctx = torch.randn(len(texts), 4, b.token_width) * 0.02

    def run(flag: bool) -> tuple[torch.Tensor, torch.Tensor]:
        b.prepack_weights = flag
        leaf = ctx.clone().requires_grad_()
        out = b.encode_prompts(leaf, texts)
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        return out.detach(), leaf.grad

    plain = run(False)
    assert not any(getattr(m, "_pack", None) for m in b.model.modules())
    for _ in range(3):
        packed = run(True)
    layers = [m for m in b.model.modules() if isinstance(m, prepacked.PrepackedLinear)]
    assert layers and any(m._pack is not None for m in layers)
    assert not any(isinstance(m, prepacked.PrepackedLinear) for m in b.model.visual.modules())
    torch.testing.assert_close(packed[0], plain[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(packed[1], plain[1], rtol=1e-4, atol=1e-6 * float(plain[1].abs().max()))
    b.to("cpu")
    assert all(m._pack is None for m in layers)
