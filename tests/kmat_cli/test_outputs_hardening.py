"""Hardening of prompts files, outputs and predict's workers: a prompts file never runs code and is checked
before use, writers never replace special files or links, ``--output`` never clobbers an input or another
run's rows, every row is one record of valid UTF-8, and a killed ``kmat predict`` leaves no process behind."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from faults import KMAT, assert_error, cli, env, fifo_reader, png, prompts_file

pytestmark = pytest.mark.usefixtures("no_progress")

CLASSES = ["smooth nodule", "spiculated mass"]
D = 128  # the phantom backbone's embedding width


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    return prompts_file(tmp_path / "prompts.safetensors", CLASSES)


def _tampered(tmp_path: Path, meta: dict | None = None, tensors: dict | None = None) -> Path:
    """A phantom prompts file with metadata keys replaced (None: removed) and tensors replaced."""
    return prompts_file(tmp_path / "tampered.safetensors", CLASSES, meta, tensors)


# --------------------------------------------------------------------------- a prompts file never runs code
def _evil_module(folder: Path, marker: Path) -> Path:
    """A folder with a module whose import (and whose class) creates ``marker``."""
    folder.mkdir(parents=True, exist_ok=True)
    code = f"open({str(marker)!r}, 'w').close()\n\nclass Backbone:\n    def __init__(self, **kw):\n"
    code += f"        open({str(marker)!r}, 'w').close()\n"
    (folder / "kmat_evil_plugin.py").write_text(code)
    (folder / "__init__.py").write_text(code)
    return folder


def _code_configs(evil: Path, marker: Path) -> dict[str, Any]:
    return {
        "os-system": {"name": "os:system", "command": f"touch {marker}"},
        "subprocess-run": {"name": "subprocess:run", "args": ["touch", str(marker)]},
        "builtins-exec": {"name": "builtins:exec", "source": f"open({str(marker)!r}, 'w')"},
        "importable-module": {"name": "kmat_evil_plugin:Backbone"},
        "file-path": {"name": str(evil / "kmat_evil_plugin.py")},
        "folder-path": {"name": str(evil)},
        "local-dir-with-python": {"name": "open_clip", "model": f"local-dir:{evil}"},
    }


@pytest.mark.parametrize(
    "case",
    [
        "os-system",
        "subprocess-run",
        "builtins-exec",
        "importable-module",
        "file-path",
        "folder-path",
        "local-dir-with-python",
    ],
)
@pytest.mark.parametrize("where", ["metadata", "config-beside"])
def test_a_prompts_file_cannot_run_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, where: str
) -> None:
    """Whatever a prompts file (or a config.yaml beside it) names, no code of its choosing runs: exit 2 with
    one line naming the file, and the marker the code would create does not exist."""
    import yaml

    marker = tmp_path / "pwned"
    evil = _evil_module(tmp_path / "evil", marker)
    monkeypatch.syspath_prepend(str(evil))  # the module is importable: only the check keeps it out
    section = _code_configs(evil, marker)[case]
    folder = tmp_path / "bundle"
    folder.mkdir()
    if where == "metadata":
        prompts = prompts_file(
            folder / "p.safetensors", CLASSES, {"kmat.backbone_config": json.dumps(section)}
        )
        named = prompts
    else:
        prompts = prompts_file(folder / "p.safetensors", CLASSES, {"kmat.backbone_config": None})
        named = folder / "config.yaml"
        named.write_text(yaml.safe_dump({"backbone": section}))
    result = cli("predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--workers", "0")
    assert not marker.exists(), f"code named by {where} ran"
    assert_error(result, evil if case == "local-dir-with-python" else named)  # open_clip names its folder


def test_a_run_config_may_name_a_plugin_by_import_path_with_the_opt_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``module:attr`` in a run folder's config.yaml (``--run``) is imported once the user opts in with
    KMAT_TRUST_CODE=1 (tests/kmat_cli/test_registry_trust.py: refused without it)."""
    import yaml

    monkeypatch.setenv("KMAT_TRUST_CODE", "1")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "finished"}))
    (run / "config.yaml").write_text(
        yaml.safe_dump({"backbone": {"name": "kmat.backbones.phantom:PhantomBackbone"}})
    )
    prompts_file(run / "prompts.safetensors", CLASSES, {"kmat.backbone_config": None})
    result = cli("predict", png(tmp_path / "x.png", 1), "--run", run, "--workers", "0")
    assert result.code == 0, result.err
    assert next(csv.DictReader(io.StringIO(result.out)))["label"] in CLASSES


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"name": "phantom", "command": "touch x"}, "'command'"),
        ({"name": "phantom", "device": "cuda"}, "'device'"),
        ({"name": "phantom", "vision_only": False}, "'vision_only'"),
        ({"name": "phantom", "weights": 5}, "'weights'"),
        ({"name": "phantom", "weights": ["a"]}, "'weights'"),
        ({"name": "open_clip", "model": {"a": 1}}, "'model'"),
        ({"name": "open_clip", "pretrained": 1.5}, "'pretrained'"),
        ({"name": 7}, "kmat.backbone_config"),
    ],
)
def test_prompts_file_backbone_options_must_be_the_backbones_own(
    tmp_path: Path, section: dict, needle: str
) -> None:
    """Options from a file are the backbone's keyword-only options (not the run-time ``device``/
    ``vision_only``), with values of the option's type; anything else names the option, nothing is built."""
    prompts = _tampered(tmp_path, {"kmat.backbone_config": json.dumps(section)})
    result = cli("predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--workers", "0")
    line = assert_error(result, prompts, needle)
    assert "does not fit" not in line  # refused by the check, not by the constructor's TypeError


# ----------------------------------------------------------------------------- malformed prompts contents
PROMPTS_FAULTS = {
    "scale-nan": ({"kmat.logit_scale": "nan"}, None, "kmat.logit_scale"),
    "scale-inf": ({"kmat.logit_scale": "inf"}, None, "kmat.logit_scale"),
    "scale-negative": ({"kmat.logit_scale": "-20"}, None, "kmat.logit_scale"),
    "scale-zero": ({"kmat.logit_scale": "0"}, None, "kmat.logit_scale"),
    "scale-huge": ({"kmat.logit_scale": "1e6"}, None, "kmat.logit_scale"),
    "scale-text": ({"kmat.logit_scale": "hot"}, None, "kmat.logit_scale"),
    "scale-missing": ({"kmat.logit_scale": None}, None, "kmat.logit_scale"),
    "int-tensor": (None, {"text_embeddings.lo": torch.ones(2, D, dtype=torch.int32)}, "text_embeddings.lo"),
    "bool-tensor": (None, {"text_embeddings.lo": torch.ones(2, D, dtype=torch.bool)}, "text_embeddings.lo"),
    "int-context": (None, {"context.ctx": torch.ones(4, 8, dtype=torch.int64)}, "context.ctx"),
    "three-dims": (None, {"text_embeddings.lo": torch.ones(2, D, 1)}, "text_embeddings.lo"),
    "zero-row": (
        None,
        {"text_embeddings.lo": torch.cat([torch.ones(1, D), torch.zeros(1, D)])},
        "text_embeddings.lo",
    ),
    "zero-row-hi": (None, {"text_embeddings.hi": torch.zeros(2, D)}, "text_embeddings.hi"),
    "names-empty-list": ({"kmat.class_names": "[]"}, None, "kmat.class_names"),
    "names-not-a-list": ({"kmat.class_names": '"smooth nodule"'}, None, "kmat.class_names"),
    "names-numbers": ({"kmat.class_names": "[1, 2]"}, None, "kmat.class_names"),
    "names-zero": ({"kmat.class_names": '[0, "spiculated mass"]'}, None, "kmat.class_names"),
    "names-empty-string": ({"kmat.class_names": '["", "spiculated mass"]'}, None, "kmat.class_names"),
    "names-duplicated": ({"kmat.class_names": '["nodule", "nodule"]'}, None, "kmat.class_names"),
    "names-lone-surrogate": ({"kmat.class_names": '["a\\udc80", "b"]'}, None, "kmat.class_names"),
    "names-count": ({"kmat.class_names": '["a", "b", "c"]'}, None, "for 3 classes"),
    "names-missing": ({"kmat.class_names": None}, None, "kmat.class_names"),
    "embed-dim-text": ({"kmat.embed_dim": "wide"}, None, "kmat.embed_dim"),
    "preprocess-list": ({"kmat.preprocess": "[1]"}, None, "kmat.preprocess"),
}


@pytest.mark.parametrize("case", list(PROMPTS_FAULTS))
def test_malformed_prompts_are_refused_on_load(tmp_path: Path, case: str) -> None:
    """Each fault is refused before any image is read: exit 2, one line naming the file and the key, no
    output file (NaN/uniform probabilities with a confident label are never written)."""
    meta, tensors, key = PROMPTS_FAULTS[case]
    prompts = _tampered(tmp_path, meta, tensors)
    out = tmp_path / "rows.csv"
    result = cli("predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--workers", "0", "-o", out)
    assert_error(result, prompts, key)
    assert not out.exists()


# ------------------------------------------------------------------ special destinations
def test_predict_output_to_a_fifo_and_a_link(tmp_path: Path, prompts: Path) -> None:
    """--output naming a FIFO streams the rows into it; one naming a link writes the link's target."""
    image = png(tmp_path / "x.png", 1)
    fifo = tmp_path / "rows.fifo"
    with fifo_reader(fifo) as got:
        result = cli("predict", image, "--embeddings", prompts, "--workers", "0", "-o", fifo)
    assert result.code == 0, result.err
    rows = list(csv.reader(io.StringIO(got[0].decode())))
    assert len(rows) == 2 and rows[1][0] == str(image) and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    target, link = tmp_path / "target.csv", tmp_path / "link.csv"
    link.symlink_to(target)
    result = cli("predict", image, "--embeddings", prompts, "--workers", "0", "-o", link)
    assert result.code == 0 and link.is_symlink() and len(list(csv.reader(target.open()))) == 2


# ------------------------------------------------------------------------------------ output vs. the inputs
@pytest.mark.parametrize(
    "where", ["input-in-folder", "input-by-name", "hard-link-to-input", "new-image-name-in-folder", "prompts"]
)
def test_output_that_would_clobber_an_input_is_refused(tmp_path: Path, prompts: Path, where: str) -> None:
    """Refused with exit 2 before anything is opened: the input's bytes are untouched."""
    scans = tmp_path / "scans"
    a, b = png(scans / "a.png", 1), png(scans / "b.png", 2)
    before = {p: p.read_bytes() for p in (a, b, prompts)}
    args: list[Any] = [scans]
    output = {
        "input-in-folder": b,
        "new-image-name-in-folder": scans / "sub" / "rows.png",
        "prompts": prompts,
    }
    if where == "input-by-name":
        (tmp_path / "elsewhere").mkdir()
        args, out = [a, tmp_path / "elsewhere" / ".." / "scans" / "b.png", b], b
    elif where == "hard-link-to-input":
        out = tmp_path / "alias.csv"
        os.link(b, out)
    else:
        out = output[where]
    result = cli("predict", *args, "--embeddings", prompts, "--workers", "0", "--output", out)
    assert_error(result, "--output")
    assert {p: p.read_bytes() for p in (a, b, prompts)} == before
    assert not (scans / "sub").exists()


def test_output_in_the_input_folder_with_another_suffix_is_fine(tmp_path: Path, prompts: Path) -> None:
    scans = tmp_path / "scans"
    png(scans / "a.png", 1)
    result = cli("predict", scans, "--embeddings", prompts, "--workers", "0", "--output", scans / "rows.csv")
    assert result.code == 0 and len((scans / "rows.csv").read_text().splitlines()) == 2


# ------------------------------------------------------------------------------------------------ rows
def _read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_line_breaks_in_file_and_class_names_stay_in_one_row(tmp_path: Path, fmt: str) -> None:
    """``\\r``, ``\\n`` and Unicode line separators in a file name or a class name never split a row: CSV
    read back with the csv module, JSONL line by line with ``str.splitlines`` (which splits on U+2028)."""
    classes = ["round\rnodule", "mass\n2", "ring\u2028lesion"]
    prompts = prompts_file(tmp_path / "p.safetensors", classes)
    scans = tmp_path / "scans"
    names = ["a\rb.png", "c\nd.png", "e\u2028f.png", "g\x85h.png", "plain.png"]
    for i, name in enumerate(names):
        png(scans / name, i)
    out = tmp_path / f"rows.{fmt}"
    result = cli("predict", scans, "--embeddings", prompts, "--workers", "0", "-f", fmt, "-o", out)
    assert result.code == 0, result.err
    expected = sorted(str(scans / n) for n in names)
    if fmt == "csv":
        rows = _read_csv(out.read_bytes())
        assert rows[0] == ["path", "frame", "label", *[f"prob_{c}" for c in classes], "error"]
        assert [r[0] for r in rows[1:]] == expected
        assert all(len(r) == len(rows[0]) and r[2] in classes for r in rows[1:])
    else:
        records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [r["path"] for r in records] == expected
        assert all(set(r["probabilities"]) == set(classes) and r["label"] in classes for r in records)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_non_utf8_file_name_is_escaped_in_its_row_only(tmp_path: Path, prompts: Path, fmt: str) -> None:
    """The output decodes as strict UTF-8; the bad name's row has ``\\xNN`` for each undecodable byte; every
    other row is byte-identical to a run without that file."""
    scans = tmp_path / "scans"
    png(scans / "a.png", 1)
    png(scans / "z.png", 3)
    bad = os.fsencode(scans) + b"/caf\xe9-\xff.png"
    png(Path(os.fsdecode(bad)), 2)
    rows = {}
    for name in ("with", "without"):
        out = tmp_path / f"{name}.{fmt}"
        result = cli("predict", scans, "--embeddings", prompts, "--workers", "0", "-f", fmt, "-o", out)
        assert result.code == 0, result.err
        rows[name] = out.read_bytes().split(b"\n")
        if name == "with":
            os.unlink(bad)
    text = b"\n".join(rows["with"]).decode("utf-8")  # strict
    escaped = str(scans) + "/caf\\xe9-\\xff.png"
    if fmt == "csv":
        parsed = _read_csv(text.encode())
        assert [r[0] for r in parsed[1:]] == [str(scans / "a.png"), escaped, str(scans / "z.png")]
    else:
        assert [json.loads(line)["path"] for line in text.splitlines()] == [
            str(scans / "a.png"),
            escaped,
            str(scans / "z.png"),
        ]
    head = 1 if fmt == "csv" else 0
    assert rows["with"][: head + 1] + rows["with"][head + 2 :] == rows["without"]


# ------------------------------------------------------------------------------------ concurrent outputs
def test_an_output_locked_by_another_predict_is_refused_untouched(tmp_path: Path, prompts: Path) -> None:
    """While another ``kmat predict`` holds the output (its lock), a second one exits 2 before emptying
    or writing it: the first one's rows stay whole, never interleaved or NUL-filled."""
    import fcntl

    out = tmp_path / "rows.csv"
    out.write_bytes(b"path,frame,label\nfirst run's rows\n")
    with open(out, "ab") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        result = cli(
            "predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--workers", "0", "-o", out
        )
        assert_error(result, out, "another kmat predict")
        assert out.read_bytes() == b"path,frame,label\nfirst run's rows\n"
    result = cli("predict", png(tmp_path / "x.png", 1), "--embeddings", prompts, "--workers", "0", "-o", out)
    assert result.code == 0 and len(_read_csv(out.read_bytes())) == 2  # the lock went with its holder


# ----------------------------------------------------------------------------------------------- stdout
def test_closed_stdout_is_bad_usage(tmp_path: Path, prompts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``kmat predict ... >&-`` (Python's sys.stdout is None then): exit 2, one line, before the model loads."""
    from contextlib import redirect_stderr

    from kmat_cli.app import main

    err = io.StringIO()
    monkeypatch.setattr(sys, "stdout", None)
    with redirect_stderr(err):
        code = main(
            ["predict", str(png(tmp_path / "x.png", 1)), "--embeddings", str(prompts), "--workers", "0"]
        )
    assert code == 2
    assert err.getvalue().strip().splitlines() == [
        "kmat: error: stdout is closed; give --output FILE for the rows"
    ]


# --------------------------------------------------------------------------- processes: workers and signals
def _children(pid: int) -> set[int]:
    """Pids of the live (not zombie) processes whose parent is ``pid``, from /proc."""
    found = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat_file.read_bytes().rsplit(b")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != b"Z":
                found.add(int(stat_file.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _wait_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return {p for p in pids if _alive(p)}


WATCHED_WORKER = """
import multiprocessing as mp, os, sys, time
from kmat_cli.signals import ParentWatch

def work(watch):
    watch(0)
    time.sleep(120)  # a worker blocked forever, as on a queue nobody will read

if __name__ == "__main__":
    mp.set_start_method(sys.argv[2])
    child = mp.Process(target=work, args=(ParentWatch(use_prctl=sys.argv[1] == "prctl"),))
    child.start()
    print(child.pid, flush=True)
    time.sleep(120)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find processes")
@pytest.mark.parametrize(("how", "method"), [("prctl", "fork"), ("watchdog", "fork"), ("watchdog", "spawn")])
def test_a_worker_dies_with_its_sigkilled_parent(tmp_path: Path, how: str, method: str) -> None:
    """A process with ``ParentWatch`` as its init (as predict's decoding workers have) ends within a second
    or two when its parent is SIGKILLed, with the parent-death signal and with the polling watchdog alone;
    the parent's stdout pipe then closes, so ``communicate()`` returns."""
    script = tmp_path / "watched.py"
    script.write_text(WATCHED_WORKER)
    proc = subprocess.Popen(
        [sys.executable, str(script), how, method], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env()
    )
    try:
        worker = int(proc.stdout.readline())  # type: ignore[union-attr]
        assert _alive(worker)
        proc.kill()
        proc.communicate(timeout=10)
        assert not _wait_gone({worker}, 5)
    finally:
        proc.kill()
        with contextlib.suppress(NameError, ProcessLookupError):
            os.kill(worker, signal.SIGKILL)


def _busy_predict(tmp_path: Path, prompts: Path) -> tuple[subprocess.Popen, Path, set[int]]:
    """A real ``kmat predict`` with two decoding workers on 400 images, waited for until its workers are
    running and it has written rows; returns the process, its output and its workers' pids. Batches of 16
    images (2.4 MB of pixels each) fill the pipe to the parent: a worker left behind blocks on it for
    ever, even past the DataLoader's own check of its parent."""
    src = png(tmp_path / "src.png", 0, size=300)
    scans = tmp_path / "scans"
    scans.mkdir()
    for i in range(400):
        (scans / f"{i:04d}.png").symlink_to(src)
    out = tmp_path / "rows.csv"
    proc = subprocess.Popen(
        [KMAT, "predict", scans, "--embeddings", prompts, "--workers", "2", "--batch-size", "16", "-o", out,
         "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(),
    )  # fmt: skip
    deadline = time.monotonic() + 240
    workers: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        workers |= _children(proc.pid)
        if len(workers) >= 2 and out.exists() and out.read_bytes().count(b"\n") >= 17:
            break
        time.sleep(0.02)
    assert proc.poll() is None and len(workers) >= 2, "predict finished before it could be killed mid-run"
    return proc, out, workers


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find processes")
def test_sigkilled_predict_leaves_no_workers(tmp_path: Path, prompts: Path) -> None:
    proc, out, workers = _busy_predict(tmp_path, prompts)
    try:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=20)  # returns only once no worker holds the pipes any more
        assert proc.returncode == -signal.SIGKILL
        assert not _wait_gone(workers, 5), "decoding workers outlived their SIGKILLed parent"
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    rows = _read_csv(out.read_bytes())
    assert out.read_bytes().endswith(b"\n") and all(len(r) == len(rows[0]) for r in rows)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find processes")
def test_sigterm_stops_predict_like_ctrl_c(tmp_path: Path, prompts: Path) -> None:
    """SIGTERM: a clean stop as on Ctrl-C (workers shut down, the rows so far kept whole, the summary line),
    exit code 143 (128 + SIGTERM)."""
    proc, out, workers = _busy_predict(tmp_path, prompts)
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert not _wait_gone(workers, 5)
    finally:
        proc.kill()
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    lines = err.decode().strip().splitlines()
    assert "Traceback" not in err.decode() and lines[-1] == "kmat: terminated"
    assert lines[-2].startswith("kmat: predict interrupted after")
    data = out.read_bytes()
    rows = _read_csv(data)
    assert data.endswith(b"\n") and 16 <= len(rows) - 1 < 400 and all(len(r) == len(rows[0]) for r in rows)


@pytest.mark.slow
def test_predict_into_a_closed_pipe_exits_141_quietly(tmp_path: Path, prompts: Path) -> None:
    """``kmat predict ... | head -1``: the reader leaves after one line; predict stops with exit 141 (as a
    process ended by SIGPIPE), its workers gone, and stderr holds no traceback or "Exception ignored"."""
    scans = tmp_path / "scans"
    for i in range(300):
        png(scans / f"{i:03d}.png", i, size=32)
    cmd = f"{KMAT} predict {scans} --embeddings {prompts} --workers 2 --batch-size 2 | head -1"
    proc = subprocess.run(
        ["bash", "-c", cmd + "; echo ${PIPESTATUS[0]} >&2"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    assert proc.stdout.startswith("path,frame,label,") and proc.stdout.count("\n") == 1
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == "141", proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert lines[-2].startswith("kmat: predict interrupted after")


@pytest.mark.slow
def test_two_predicts_with_the_same_output_leave_one_complete_file(tmp_path: Path, prompts: Path) -> None:
    """A second ``kmat predict`` (other inputs) with the same output while the first is writing it (held
    with SIGSTOP to make the overlap certain): the second exits 2 (the file is locked) without emptying it,
    and the file ends as the first run's complete rows in order, no NUL byte. (The second run used to empty
    the file and write its rows; the first then wrote on at its old offset, leaving a hole of NULs.)"""
    src = png(tmp_path / "src.png", 0, size=256)
    first_scans, second_scans = tmp_path / "first", tmp_path / "second"
    first_scans.mkdir()
    for i in range(300):
        (first_scans / f"{i:03d}.png").symlink_to(src)
    png(second_scans / "x.png", 1)
    out = tmp_path / "rows.csv"

    def start(scans: Path) -> subprocess.Popen:
        cmd = [
            KMAT,
            "predict",
            scans,
            "--embeddings",
            prompts,
            "--workers",
            "1",
            "--batch-size",
            "1",
            "-o",
            out,
        ]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())

    first = start(first_scans)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (out.exists() and out.read_bytes().count(b"\n") >= 20):
            time.sleep(0.02)
        first.send_signal(signal.SIGSTOP)
        second = start(second_scans)
        second_code = second.wait(timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    first_code = first.wait(timeout=600)
    errors = [p.stderr.read().decode() for p in (first, second)]  # type: ignore[union-attr]
    assert (first_code, second_code) == (0, 2), errors
    assert "another kmat predict" in errors[1]
    data = out.read_bytes()
    rows = _read_csv(data)
    assert b"\0" not in data and len(rows) == 301 and all(len(r) == len(rows[0]) for r in rows)
    assert [r[0] for r in rows[1:]] == [str(first_scans / f"{i:03d}.png") for i in range(300)]
