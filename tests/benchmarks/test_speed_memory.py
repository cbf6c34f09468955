"""benchmarks/speed_memory.py: the peak memory is the kernel's high-water mark, and a child run through this
file's own command line answers with its peak memory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import speed_memory
from _common import phantom_weights, png_images, prompts_file


def test_peak_rss_lies_between_the_resident_set_now_and_the_machine_memory() -> None:
    page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20
    resident_mb = int(Path("/proc/self/statm").read_text().split()[1]) * page_mb
    assert resident_mb <= speed_memory.peak_rss_mb() < os.sysconf("SC_PHYS_PAGES") * page_mb


@pytest.mark.spawns
def test_child_predict_answers_its_peak_memory(tmp_path: Path) -> None:
    weights, _ = phantom_weights(tmp_path)
    prompts = prompts_file(tmp_path, "phantom", {"weights": weights})
    png_images(tmp_path / "images", 4, 32)
    images = str(tmp_path / "images")
    args = ["predict", "--device", "cpu", "--threads", "1", "--prompts", str(prompts), "--images", images]
    out = speed_memory.in_child([*args, "--batch-size", "2"])
    assert set(out) == {"peak_rss_mb", "worker_peak_rss_mb"}
    assert out["peak_rss_mb"] > 50 and out["worker_peak_rss_mb"] > 0  # torch loaded; one decoding worker ran
