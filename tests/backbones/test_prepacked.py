"""MKL-packed frozen linear layers (backbones/prepacked.py): the same values and input gradients as
``nn.Linear``, packing only when enabled, repeated, frozen and float32, never serving a stale pack."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from kmat.backbones import prepacked
from kmat.backbones.openclip_adapter import OpenClipBackbone
from torch import nn

pytestmark = pytest.mark.skipif(not prepacked.available(), reason="torch built without MKL")


def _layer(n_in: int = 48, n_out: int = 80, bias: bool = True, seed: int = 0) -> prepacked.PrepackedLinear:
    torch.manual_seed(seed)
    layer = nn.Linear(n_in, n_out, bias=bias).requires_grad_(False)
    assert prepacked.convert(layer) == 1
    return layer


def _newest(layer: prepacked.PrepackedLinear) -> prepacked._Pack | None:
    """The layer's most recently used pack (None: none kept)."""
    return next(reversed(layer._packs.values())) if layer._packs else None


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
    with prepacked.enabled(), torch.no_grad():
        layer(x)  # a first call without gradient: plain, remembered
    assert _newest(layer) is None
    y, g = _value_and_grad(layer, x)  # with gradient: packed, backward pack made
    assert _newest(layer) is not None and _newest(layer).backward is not None
    y_true, g_true = _truth(layer, x)
    assert y.shape == y_true.shape and g.shape == g_true.shape
    torch.testing.assert_close(y, y_true, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g, g_true, rtol=1e-5, atol=1e-5)


def test_no_packing_outside_enabled_trainable_or_autocast() -> None:
    layer = _layer()
    x = torch.randn(20, 48)
    for _ in range(3):
        layer(x)
    assert _newest(layer) is None  # not enabled

    trainable = _layer()
    trainable.weight.requires_grad_(True)
    leaf = x.clone().requires_grad_()
    with prepacked.enabled():
        for _ in range(3):
            out = trainable(leaf)
    out.sum().backward()
    assert _newest(trainable) is None and trainable.weight.grad is not None  # weight gradients still flow

    with prepacked.enabled(), torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(3):
            out = layer(x)
    assert _newest(layer) is None and out.dtype == torch.bfloat16

    double = _layer().double()
    with prepacked.enabled():
        for _ in range(3):
            double(x.double())
    assert _newest(double) is None


def _plain_call(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with prepacked.enabled(), torch.no_grad():
        return layer(x)


def test_first_gradient_call_packs_at_once_no_grad_calls_when_repeated() -> None:
    layer = _layer()
    x = torch.randn(12, 48)
    _value_and_grad(layer, x)
    assert _newest(layer) is not None  # a training step packs from its first call

    layer = _layer()
    for _ in range(prepacked._REPEATS - 1):
        _plain_call(layer, x)
        assert _newest(layer) is None
    _plain_call(layer, x)
    assert (
        _newest(layer) is not None and _newest(layer).backward is None
    )  # no backward pack without a backward


def test_two_row_counts_kept_the_oldest_dropped() -> None:
    layer = _layer()
    a, b, c = torch.randn(16, 48), torch.randn(9, 48), torch.randn(5, 48)
    made = []
    for _ in range(3):  # a method alternating two prompt batches: each packed once, then reused
        for x in (a, b):
            y, _ = _value_and_grad(layer, x)
            torch.testing.assert_close(y, F.linear(x, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)
            made.append(id(_newest(layer)))
    assert [k[0] for k in layer._packs] == [16, 9] and len(set(made)) == 2
    _value_and_grad(layer, c)
    assert [k[0] for k in layer._packs] == [9, 5]  # the oldest row count dropped


def test_new_row_count_or_changed_weight_never_uses_a_stale_pack() -> None:
    layer = _layer()
    a, b = torch.randn(16, 48), torch.randn(9, 48)
    _value_and_grad(layer, a)
    first = _newest(layer)
    assert first is not None and first.key[0] == 16
    y = _plain_call(layer, b)  # another row count without gradient: plain until it repeats
    assert _newest(layer) is first
    torch.testing.assert_close(y, F.linear(b, layer.weight, layer.bias), rtol=1e-5, atol=1e-5)

    with torch.no_grad():
        layer.weight.mul_(-2.0)  # in place: the weight's version changes, the kept pack no longer matches
    for _ in range(3):
        y, g = _value_and_grad(layer, a)
        y_true, g_true = _truth(layer, a)
        torch.testing.assert_close(y, y_true, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(g, g_true, rtol=1e-5, atol=1e-5)
    assert _newest(layer) is not first and _newest(layer).key[2] != first.key[2]
    prepacked.release(layer)
    assert _newest(layer) is None


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
    from kmat.backbones.open_clip import OpenCLIP

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
    assert not any(getattr(m, "_packs", None) for m in b.model.modules())
    for _ in range(3):
        packed = run(True)
    layers = [m for m in b.model.modules() if isinstance(m, prepacked.PrepackedLinear)]
    assert layers and any(_newest(m) is not None for m in layers)
    assert not any(isinstance(m, prepacked.PrepackedLinear) for m in b.model.visual.modules())
    torch.testing.assert_close(packed[0], plain[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(packed[1], plain[1], rtol=1e-4, atol=1e-6 * float(plain[1].abs().max()))
    b.to("cpu")
    assert all(_newest(m) is None for m in layers)


def test_resumed_training_with_packed_weights_equals_an_uninterrupted_run(
    tmp_path, tiny_biomedclip_dir
) -> None:
    """Training steps pack from their first call, so a run resumed in a fresh process (a new backbone,
    packs made anew) computes every later step exactly as the uninterrupted run: equal parameters."""
    from kmat.backbones.open_clip import BiomedCLIP

    from kmat_cli import assemble, config
    from kmat_cli.registry import get
    from kmat_cli.train import Trainer

    class StopAfterTwo(Trainer):
        def save(self) -> None:
            super().save()
            if self.epoch == 2:
                raise KeyboardInterrupt

    def trainer(kind: type[Trainer], folder: str) -> Trainer:
        backbone = BiomedCLIP(model=f"local-dir:{tiny_biomedclip_dir}")
        cfg = config.defaults()
        cfg["task"], cfg["transport"], cfg["method"] = {"name": "chest"}, {"name": "fgw"}, {"name": "kmat"}
        task = assemble.build_task(cfg)
        parts = assemble.Parts(
            cfg=cfg,
            device=torch.device("cpu"),
            backbone=backbone,
            task=task,
            descriptions=task.descriptions,
            transport=get("transports", "fgw")(),
        )
        method = assemble.build_method(parts, seed=1)
        g = torch.Generator().manual_seed(0)
        feats = F.normalize(torch.randn(12, backbone.embed_dim, generator=g), dim=-1)
        train_cfg = {**cfg["train"], "epochs": 3, "batch_size": 4, "shots": 4}
        return kind(method, feats, torch.arange(3).repeat(4), train_cfg, device=torch.device("cpu"),
                    folder=tmp_path / folder, progress=False)  # fmt: skip

    full = trainer(Trainer, "full")
    full.fit()
    with pytest.raises(KeyboardInterrupt):
        trainer(StopAfterTwo, "cut").fit()
    resumed = trainer(Trainer, "cut")
    assert resumed.resume() == 2
    resumed.fit()
    backbone = resumed.method.setup.backbone
    assert any(
        _newest(m) is not None for m in backbone.model.modules() if isinstance(m, prepacked.PrepackedLinear)
    )
    a, b = full.method.state_dict(), resumed.method.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
