"""What the speed benchmark (``speed.py``) measures and what it produced: the plans of its two modes, the
chest protocol's sizes, and one device's results with the run and protocol times derived from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Log = Callable[[str], None]
Sync = Callable[[], None] | None  # run before each clock reading (a CUDA synchronize), or nothing
SEEDS = 3
CHEST_TEST = (1678, 914)  # high-end CT and low-end X-ray test images (Table 1 of the K-MaT paper)


@dataclass(frozen=True)
class Plan:
    """How much to measure: repetitions, image counts, whether K-MaT's 50 epochs are run for real."""

    name: str
    step_reps: int
    epoch_reps: int  # packed/unpacked K-MaT epochs (row 1's prepacking gain)
    images: int  # PNGs for the encoding and BiomedCLIP predict rows
    image_batch: int
    image_reps: int
    full_kmat_run: bool  # also fit K-MaT's real 50 epochs (else only the projection from its steps)
    phantom_images: int
    phantom_reps: int
    eval_subset: int  # test features CoCoOp's (image-conditioned) evaluation is timed on, then scaled


QUICK = Plan("quick", 3, 2, 16, 8, 3, False, 2048, 3, 64)
FULL = Plan("full", 9, 5, 48, 16, 5, True, 2048, 7, 128)


@dataclass
class Results:
    """What one device's measurement produced (seconds unless named otherwise)."""

    device: str
    steps: dict[str, float] = field(default_factory=dict)  # medians: naive, kmat, bound, fgw
    speedup: float = float("nan")
    epochs: dict[str, float] = field(default_factory=dict)  # medians of a K-MaT epoch: packed, unpacked
    prepack_gain: float = float("nan")  # epoch with unpacked text weights / epoch with packed ones
    overhead: float = float("nan")
    fgw_share: float = float("nan")
    step_tokens: str = ""
    runs: dict[str, dict[str, float]] = field(default_factory=dict)  # method -> setup, step, save, fit, eval
    kmat_fit_measured: bool = False
    kmat_projected_fit: float = float("nan")  # the projection, when the fit was measured too
    encode_ratio: float = float("nan")
    encode_rate: float = float("nan")
    unique_images: int = 0
    descriptions: int = 0  # description texts K-MaT's set-up encodes
    predict: dict[str, float] = field(default_factory=dict)  # "biomedclip", "phantom" -> ratio
    predict_rate: dict[str, float] = field(default_factory=dict)
    predict_workers: dict[str, str] = field(default_factory=dict)  # what --workers auto chose
    rss_mb: dict[str, float] = field(default_factory=dict)

    def train_run_s(self) -> float:
        """One K-MaT run: method set-up + 50 epochs."""
        r = self.runs.get("kmat", {})
        return r.get("setup", float("nan")) + r.get("fit", float("nan"))

    def protocol_s(self) -> tuple[float, float, float]:
        """(one-time image encoding, 6 methods x 3 seeds of set-up + training + evaluation, their sum)."""
        encode = self.unique_images / self.encode_rate if self.encode_rate > 0 else float("nan")
        runs = SEEDS * sum(r["setup"] + r["fit"] + r["eval"] for r in self.runs.values())
        return encode, runs, encode + runs
