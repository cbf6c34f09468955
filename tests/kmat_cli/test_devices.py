"""Device names resolved and checked once: ``auto`` picks what is there, an unavailable or unknown device is a
usage error."""

from __future__ import annotations

import pytest
import torch

from kmat_cli.api import UsageError
from kmat_cli.devices import resolve_device

pytestmark = pytest.mark.usefixtures("trust_code")


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(UsageError):
        resolve_device("tpu9")
