"""Training on CUDA: steps on the device, the transport on the CPU, and the result the CPU run's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from toyworld import toy_cfg

from kmat_cli import checkpoint, workflow

pytestmark = pytest.mark.usefixtures("trust_code")


def _prompts(tmp_path: Path, device: str, *sets: str) -> dict[str, torch.Tensor]:
    cfg = toy_cfg(tmp_path / device, f"train.device={device}", *sets, epochs=2)
    run = workflow.run_training(cfg, scores=(), progress=False)
    assert run.finished
    state = checkpoint.load(run.path)
    assert state.solver["plan"].device.type == "cpu" and torch.isfinite(state.solver["plan"]).all()
    return load_file(run.file("prompts.safetensors"))


@pytest.mark.cuda
def test_kmat_training_on_cuda_matches_the_cpu(tmp_path: Path) -> None:
    """Without mixed precision the two runs differ by float round-off only."""
    cpu = _prompts(tmp_path, "cpu")
    cuda = _prompts(tmp_path, "cuda", "train.amp=false")
    assert cpu.keys() == cuda.keys()
    for key in cpu:
        if cpu[key].is_floating_point():
            torch.testing.assert_close(cuda[key], cpu[key], rtol=1e-3, atol=1e-4)


@pytest.mark.cuda
def test_kmat_training_on_cuda_with_mixed_precision_stays_close(tmp_path: Path) -> None:
    cpu = _prompts(tmp_path, "cpu")
    amp = _prompts(tmp_path, "cuda", "train.amp=true")
    for key in cpu:
        if cpu[key].is_floating_point() and cpu[key].dim() == 2:  # (K, D) class embeddings
            cos = torch.nn.functional.cosine_similarity(amp[key].float(), cpu[key].float(), dim=-1)
            assert bool((cos > 0.99).all()), f"{key}: cosine to the CPU run {cos.tolist()}"
