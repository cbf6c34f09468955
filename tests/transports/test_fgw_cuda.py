"""CUDA inputs: the transport is solved on the CPU and its value and gradient come back on the device."""

from __future__ import annotations

import pytest
import torch

from kmat_cli.registry import get


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["fgw", "wasserstein", "gw"])
def test_cuda_inputs_are_solved_on_the_cpu_and_returned_on_the_device(name: str, make_embeddings) -> None:
    """The same float64 numbers go through the same CPU solve: value, plan and gradient equal the CPU
    call's bit for bit, and live on the inputs' device."""
    H, L = make_embeddings(6, 512, normalised=True, seed=7)
    on_cpu, on_cuda = get("transports", name)(), get("transports", name)()
    X = L.clone().requires_grad_()
    expected = on_cpu.solve(H, X)
    expected.value.backward()
    Y = L.cuda().requires_grad_()
    result = on_cuda.solve(H.cuda(), Y)
    result.value.backward()
    assert result.value.device.type == "cuda" and result.plan.device.type == "cuda"
    assert Y.grad is not None and Y.grad.device.type == "cuda"
    assert torch.equal(result.value.detach().cpu(), expected.value.detach())
    assert torch.equal(result.plan.cpu(), expected.plan)
    assert torch.equal(Y.grad.cpu(), X.grad)
    assert on_cuda.solver_state()["plan"].device.type == "cpu"  # the warm start stays on the CPU


@pytest.mark.cuda
def test_float32_cuda_inputs_under_autocast(make_embeddings) -> None:
    H, L = make_embeddings(5, 64, normalised=True, seed=8, dtype=torch.float32)
    T = get("transports", "fgw")()
    reference = T(H, L)
    Y = L.cuda().requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = T(H.cuda(), Y)
    loss.backward()
    assert loss.dtype == torch.float32 and loss.device.type == "cuda" and Y.grad.dtype == torch.float32
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
