"""The speed benchmark's report (``speed.py``): a header per device, the markdown table of its rows with
their goals, and the last line ``speedup_vs_naive=<x> overhead_vs_bound=<y>``."""

from __future__ import annotations

from datetime import date

from _common import machine
from speed_plan import SEEDS, Plan, Results

GOALS = {
    "speedup": 10.0,  # naive / kmat >= 10x
    "overhead": 1.3,  # kmat / bound <= 1.3x
    "fgw_share": 0.05,  # < 5% of a step
    "train_run_s": 120.0,  # one chest-sized training run < 2 min
    "encode_ratio": 0.95,  # feature encoding >= 95% of the bare image tower
    "predict_ratio": 0.90,  # predict >= 90% of the bare image tower
}


def _ok(ok: bool) -> str:
    """The "met" cell: ``yes``, or a bold ``no``."""
    return "yes" if ok else "**no**"


def _s(x: float) -> str:
    """Seconds as ms below 1 s, s below 2 min, min from there; NaN as ``n/a``."""
    if x != x:
        return "n/a"
    if x >= 120:
        return f"{x / 60:.1f} min"
    return f"{x:.2f} s" if x >= 1 else f"{1e3 * x:.1f} ms"


def table(res: Results) -> str:
    """The markdown table of one device's results."""
    g = GOALS
    st = res.steps
    rows = [
        ("1", "naive step (image tower on 4 images + text at the full 256 tokens)", _s(st.get("naive", float("nan"))), "", ""),
        ("1", "kmat step (`Trainer.step`: cached features, real-length prompts)", _s(st.get("kmat", float("nan"))), "", ""),
        ("1", "**speed-up vs naive**", f"{res.speedup:.1f}x", f">= {g['speedup']:.0f}x", _ok(res.speedup >= g["speedup"])),
        ("1", "K-MaT epoch (12 steps), text weights MKL-packed (default)", _s(res.epochs.get("packed", float("nan"))), "", ""),
        ("1", "K-MaT epoch (12 steps), text weights unpacked (`prepack_weights = False`)", _s(res.epochs.get("unpacked", float("nan"))), "", ""),
        ("1", "gain of the packed text weights (unpacked / packed epoch)", f"{res.prepack_gain:.2f}x", "", ""),
        ("2", "lower bound (text fwd+bwd of the 2K prompts at real length + loss)", _s(st.get("bound", float("nan"))), "", ""),
        ("2", "**overhead vs bound** (kmat step / bound)", f"{res.overhead:.2f}x", f"<= {g['overhead']}x", _ok(res.overhead <= g["overhead"])),
        ("3", "FGW forward + backward (K = 3, float64)", _s(st.get("fgw", float("nan"))), "", ""),
        ("3", "**FGW share of a step**", f"{100 * res.fgw_share:.2f}%", f"< {100 * g['fgw_share']:.0f}%", _ok(res.fgw_share < g["fgw_share"])),
    ]  # fmt: skip
    kmat = res.runs.get("kmat", {})
    if res.kmat_fit_measured:
        how = f"measured; projected {_s(res.kmat_projected_fit)}"
    else:
        how = "projected: 50 x (12 x step + checkpoint)"
    train = res.train_run_s()
    rows += [
        ("4", f"K-MaT run: method set-up (encodes its {res.descriptions} descriptions once)", _s(kmat.get("setup", float("nan"))), "", ""),
        ("4", f"K-MaT run: 50 epochs = 600 steps with checkpoints ({how})", _s(kmat.get("fit", float("nan"))), "", ""),
        ("4", "**training part of one chest-sized run** (set-up + 50 epochs)", _s(train), f"< {g['train_run_s'] / 60:.0f} min", _ok(train < g["train_run_s"])),
        ("4", "**image encoding (features cache) vs bare image tower**", f"{100 * res.encode_ratio:.0f}%", f">= {100 * g['encode_ratio']:.0f}%", _ok(res.encode_ratio >= g["encode_ratio"])),
    ]  # fmt: skip
    encode, runs, total = res.protocol_s()
    if res.runs:
        rows.append(
            ("4", f"one-time encoding of {res.unique_images} unique images at {res.encode_rate:.2f} images/s", _s(encode), "", "")
        )  # fmt: skip
        for name, r in res.runs.items():
            what = (
                f"set-up {_s(r['setup'])} + training {_s(r['fit'])} (step {_s(r['step'])}) "
                f"+ evaluation {_s(r['eval'])}"
            )
            rows.append(("4", f"{name}: one run = {what}", _s(r["setup"] + r["fit"] + r["eval"]), "", ""))
        rows.append(("4", f"6 methods x {SEEDS} seeds (18 runs on the shared features)", _s(runs), "", ""))
        rows.append(
            ("4", "**projected total of the chest protocol** (encoding + 18 runs)", _s(total), "", "")
        )
    for key, label in (
        ("biomedclip", "BiomedCLIP image tower"),
        ("phantom", "phantom image tower, 1 thread"),
    ):
        if key in res.predict:
            ratio = res.predict[key]
            rows.append(
                ("5", f"**predict vs bare forward**, {label}; {res.predict_workers.get(key, '')} ({res.predict_rate[key]:.1f} images/s)", f"{100 * ratio:.0f}%", f">= {100 * g['predict_ratio']:.0f}%", _ok(ratio >= g["predict_ratio"]))
            )  # fmt: skip
    for key, label in (
        ("train", "peak RSS, K-MaT training run"),
        ("predict", "peak RSS, predict (main process)"),
        ("predict_worker", "peak RSS, predict decoding worker"),
    ):
        if key in res.rss_mb:
            rows.append(("6", label, f"{res.rss_mb[key]:.0f} MB", "", ""))
    lines = ["| # | measurement | value | goal | met |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(r)} |" for r in rows]
    return "\n".join(lines)


def last_line(res: Results) -> str:
    """``speedup_vs_naive=<x> overhead_vs_bound=<y>``: the line scripts read (``gpu_check.sh``)."""
    return f"speedup_vs_naive={res.speedup:.1f} overhead_vs_bound={res.overhead:.2f}"


def header(res: Results, plan: Plan, threads: int, load_start: tuple, load_end: tuple) -> str:
    """The lines above a device's table: date, machine, mode, load average, the text tower's tokens."""
    dev = res.device
    lines = [
        f"Date {date.today()}; {machine(dev)}; device {dev}; {threads} torch threads; mode {plan.name} "
        f"(step rows: median of {plan.step_reps} interleaved repetitions after a warm-up).",
        f"Load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in load_start)}; at end "
        f"{', '.join(f'{x:.2f}' for x in load_end)}.",
    ]
    if res.step_tokens:
        lines.append(f"Text tower per step: {res.step_tokens}.")
    return "\n".join(lines)
