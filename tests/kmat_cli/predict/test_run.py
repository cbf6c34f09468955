"""kmat predict in-process: rows, order, errors, formats, the plain-torch formula, exit codes, mismatches,
no text tower, and an interrupted run keeping its rows."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kmat_runner import cli
from PIL import Image
from predict_helpers import CLASSES, Model, write_prompts
from repo_paths import REPO

from kmat_cli.api import UsageError
from kmat_cli.predict import load_classifier, run_predict

PROB_COLUMNS = [f"prob_{c}" for c in CLASSES]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def expected_rows(info: dict[str, Any]) -> list[tuple[str, str]]:
    """(relative path, frame) of every row, in order."""
    out = []
    for f in info["files"]:
        frames = info["frames"].get(f)
        out += [(f, str(i)) for i in frames] if frames else [(f, "")]
    return out


@pytest.fixture(scope="session")
def zoo_csv(zoo: tuple[Path, dict[str, Any]], model: Model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, _ = zoo
    out = tmp_path_factory.mktemp("out") / "rows.csv"
    run_predict([root], embeddings=model.prompts, output=out, batch_size=4, workers=2, progress=False)
    return out


def test_one_row_per_input_in_order_with_errors_on_their_rows(
    zoo: tuple[Path, dict[str, Any]], zoo_csv: Path
) -> None:
    root, info = zoo
    rows = read_csv(zoo_csv)
    assert list(rows[0]) == ["path", "frame", "label", *PROB_COLUMNS, "error"]
    assert [(Path(r["path"]).relative_to(root).as_posix(), r["frame"]) for r in rows] == expected_rows(info)
    by_path = {Path(r["path"]).relative_to(root).as_posix(): r for r in rows}
    for name, needle in info["errors"].items():
        row = by_path[name]
        assert needle in row["error"] and row["label"] == "" and all(row[c] == "" for c in PROB_COLUMNS)
    lossy = by_path[info["no_decoder"]]
    assert lossy["error"] == "" or "cannot decode DICOM pixel data" in lossy["error"]
    ok = [r for r in rows if not r["error"]]
    assert len(ok) >= len(rows) - len(info["errors"]) - 1
    for r in ok:  # every odd image (16-bit, CMYK, palette, alpha, EXIF, 1x1, 8000x8000, DICOM) classified
        probs = np.array([float(r[c]) for c in PROB_COLUMNS])
        assert abs(probs.sum() - 1.0) < 1e-5 and (probs >= 0).all()
        assert r["label"] == CLASSES[int(probs.argmax())]


def test_probabilities_equal_the_plain_torch_formula(
    zoo: tuple[Path, dict[str, Any]], zoo_csv: Path, model: Model
) -> None:
    """softmax(s * normalize(f(x)) @ E.T) with open_clip's own CLIP, transform and PIL decoding."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    root, info = zoo
    pre = model.config["preprocess_cfg"]
    transform = image_transform_v2(
        PreprocessCfg(size=(32, 32), mean=pre["mean"], std=pre["std"]), is_train=False
    )
    x = torch.stack([transform(Image.open(root / p).convert("RGB")) for p in info["plain"]])
    with torch.no_grad():
        f = F.normalize(model.clip.encode_image(x), dim=-1)
    want = torch.softmax(model.logit_scale * f @ model.embeddings["lo"].T, dim=-1).numpy()
    by_path = {Path(r["path"]).relative_to(root).as_posix(): r for r in read_csv(zoo_csv)}
    got = np.array([[float(by_path[p][c]) for c in PROB_COLUMNS] for p in info["plain"]])
    assert np.allclose(got, want, atol=2e-6, rtol=1e-5)
    assert [by_path[p]["label"] for p in info["plain"]] == [CLASSES[k] for k in want.argmax(1)]


def test_jsonl_to_stdout_parses_back_to_the_same_rows(
    zoo: tuple[Path, dict[str, Any]], zoo_csv: Path, model: Model, capsysbinary: pytest.CaptureFixture
) -> None:
    root, _ = zoo
    summary = run_predict(
        [root], embeddings=model.prompts, fmt="jsonl", batch_size=64, workers=0, frames="all", progress=False
    )
    out, err = capsysbinary.readouterr()
    records = [json.loads(line) for line in out.decode().splitlines()]
    rows = read_csv(zoo_csv)
    assert len(records) == len(rows) == summary.ok + summary.failed
    for rec, row in zip(records, rows, strict=True):
        assert rec["path"] == row["path"] and rec["frame"] == (int(row["frame"]) if row["frame"] else None)
        assert (rec["error"] or "") == row["error"] and (rec["label"] or "") == row["label"]
        if rec["probabilities"] is not None:
            assert list(rec["probabilities"]) == CLASSES
            got = [rec["probabilities"][c] for c in CLASSES]
            assert np.allclose(got, [float(row[c]) for c in PROB_COLUMNS], atol=1e-6)
    line = err.decode().strip().splitlines()[-1]
    assert f"{summary.ok} ok, {summary.failed} failed" in line and "images/s" in line


def test_first_frame_only_and_hi_modality(
    zoo: tuple[Path, dict[str, Any]], model: Model, tmp_path: Path
) -> None:
    root, info = zoo
    multi = root / next(iter(info["frames"]))
    out = tmp_path / "o.csv"
    run_predict([multi], embeddings=model.prompts, output=out, frames="first", modality="hi", workers=0)
    rows = read_csv(out)
    assert [r["frame"] for r in rows] == ["0"]
    arr = np.asarray(Image.fromarray(__import__("pydicom").dcmread(multi).pixel_array[0]))
    from open_clip.transform import PreprocessCfg, image_transform_v2

    pre = model.config["preprocess_cfg"]
    transform = image_transform_v2(
        PreprocessCfg(size=(32, 32), mean=pre["mean"], std=pre["std"]), is_train=False
    )
    with torch.no_grad():
        f = F.normalize(model.clip.encode_image(transform(Image.fromarray(arr))[None]), dim=-1)
    want = torch.softmax(model.logit_scale * f @ model.embeddings["hi"].T, dim=-1)[0].numpy()
    assert np.allclose([float(rows[0][c]) for c in PROB_COLUMNS], want, atol=2e-6, rtol=1e-5)


def test_text_tower_is_never_built(
    model: Model, zoo: tuple[Path, dict[str, Any]], monkeypatch, tmp_path: Path
) -> None:
    import open_clip.model
    import open_clip.transformer

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("predict built a text tower")

    monkeypatch.setattr(open_clip.transformer.TextTransformer, "__init__", refuse)
    monkeypatch.setattr(open_clip.model, "_build_text_tower", refuse)
    monkeypatch.setattr(open_clip.model.CLIP, "__init__", refuse)
    clf = load_classifier(embeddings=model.prompts, device="cpu")
    names = [n for n, _ in clf.backbone.model.named_parameters()]
    assert names and all(n.startswith("visual.") or n == "logit_scale" for n in names)
    assert clf.backbone.tokenizer is None and not hasattr(clf.backbone.model, "transformer")
    root, info = zoo
    out = tmp_path / "o.csv"
    summary = run_predict([root / p for p in info["plain"]], embeddings=model.prompts, output=out, workers=0)
    assert summary.ok == len(info["plain"]) and summary.failed == 0


# ---------------------------------------------------------------------------------------- exit codes
def test_exit_codes(model: Model, zoo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, info = zoo
    p = str(model.prompts)
    plain = str(root / info["plain"][0])
    broken = [str(root / f) for f in info["errors"]]
    code, out, err = cli("predict", "--embeddings", p, "--workers", "0", plain, *broken)
    assert code == 0 and len(out.splitlines()) == 1 + 1 + len(broken) and "1 ok, 3 failed" in err
    code, out, err = cli("predict", "--embeddings", p, "--workers", "0", *broken)
    assert code == 1 and "0 ok, 3 failed" in err and len(out.splitlines()) == 1 + len(broken)
    usage = [
        ["--embeddings", p, str(tmp_path / "missing")],  # no such path
        [plain],  # neither --run nor --embeddings
        ["--embeddings", p, "--run", str(tmp_path), plain],  # both
        ["--embeddings", p, "--format", "xml", plain],
        ["--embeddings", p, "--modality", "mid", plain],
        ["--embeddings", p, "--batch-size", "0", plain],
        ["--embeddings", str(tmp_path / "none.safetensors"), plain],
        ["--run", str(tmp_path), plain],  # not a run folder
        ["--embeddings", p, "--device", "cuda:7" if not torch.cuda.is_available() else "nodevice", plain],
    ]
    for args in usage:
        code, out, err = cli("predict", *args)
        assert code == 2, (args, err)
        assert out == "" and len(err.strip().splitlines()) == 1, (args, err)


def _prompts_like(model: Model, dest: Path, **change: Any) -> Path:
    spec = json.loads(
        json.dumps(load_classifier(embeddings=model.prompts, device="cpu").backbone.preprocess_spec)
    )
    kw = dict(
        backbone_id=model.backbone_id,
        embed_dim=24,
        logit_scale=30.0,
        preprocess=spec,
        backbone_config={"name": "open_clip", "model": f"local-dir:{model.folder}", "pretrained": None},
    )
    embeddings = change.pop("embeddings", model.embeddings)
    kw.update(change)
    return write_prompts(dest, embeddings, **kw)


def test_mismatched_embeddings_exit_2_with_one_line(
    model: Model, zoo: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, info = zoo
    plain = str(root / info["plain"][0])
    other_id = _prompts_like(model, tmp_path / "id.safetensors", backbone_id="open_clip:ViT-B-32:openai")
    code, out, err = cli("predict", "--embeddings", str(other_id), plain)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "open_clip:ViT-B-32:openai" in err and model.backbone_id in err
    small = {m: F.normalize(torch.randn(3, 16), dim=-1) for m in ("hi", "lo")}
    other_dim = _prompts_like(model, tmp_path / "dim.safetensors", embeddings=small, embed_dim=16)
    code, out, err = cli("predict", "--embeddings", str(other_dim), plain)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "dimension 16" in err and "24" in err
    spec = {
        "image_size": 224,
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
        "resize": "shortest",
        "interpolation": "bicubic",
    }
    other_pre = _prompts_like(model, tmp_path / "pre.safetensors", preprocess=spec)
    code, out, err = cli("predict", "--embeddings", str(other_pre), plain)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "preprocessing" in err
    no_config = _prompts_like(model, tmp_path / "bare.safetensors", backbone_config=None)
    code, out, err = cli("predict", "--embeddings", str(no_config), plain)
    assert code == 2 and "--run" in err


def test_run_folder_gives_config_and_prompts(
    model: Model, zoo: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import yaml

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "finished"}))
    section = {
        "name": "open_clip",
        "model": f"local-dir:{model.folder}",
        "pretrained": None,
        "cache_dir": None,
    }
    (run / "config.yaml").write_text(yaml.safe_dump({"backbone": section}))
    with pytest.raises(UsageError, match="kmat export"):
        load_classifier(run=run, device="cpu")
    _prompts_like(model, run / "prompts.safetensors", backbone_config=None)
    clf = load_classifier(run=run, device="cpu")
    assert clf.backbone.id == model.backbone_id and clf.class_names == CLASSES and clf.modality == "lo"


# ------------------------------------------------------------------------------------------ interrupts
def test_interrupted_predict_keeps_complete_rows(model: Model, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (700, 700, 3), dtype=np.uint8)).save(
        tmp_path / "src.png", compress_level=1
    )
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        (folder / f"{i:04d}.png").symlink_to(tmp_path / "src.png")
    out = tmp_path / "rows.csv"

    def interrupt_after_rows() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            if out.exists() and out.read_bytes().count(b"\n") >= 4:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=interrupt_after_rows, daemon=True)
    # Ctrl-C as a user's shell delivers it: Python's own handler, whatever an earlier test in this process
    # (e.g. an in-process Ray) installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        watcher.start()
        with pytest.raises(KeyboardInterrupt):
            run_predict(
                [folder], embeddings=model.prompts, output=out, batch_size=1, workers=1, progress=False
            )
        watcher.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    text = out.read_text()
    assert text.endswith("\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "path" and 3 <= len(rows) - 1 < 300
    assert all(len(r) == len(rows[0]) and r[2] in CLASSES for r in rows[1:])
    assert [r[0] for r in rows[1:]] == [str(folder / f"{i:04d}.png") for i in range(len(rows) - 1)]
    assert "interrupted after" in capsys.readouterr().err


def test_docs_snippet_classifies_like_predict(
    model: Model, zoo: tuple[Path, dict[str, Any]], zoo_csv: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The plain-torch snippet of docs/predict.md gives predict's label and probabilities."""
    import re
    import shutil

    doc = (REPO / "docs" / "predict.md").read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "safe_open" in b)
    root, _ = zoo
    shutil.copy(model.prompts, tmp_path / "prompts.safetensors")
    shutil.copy(root / "plain" / "a.png", tmp_path / "scan.png")
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, "docs/predict.md", "exec"), {})
    label, probs = capsys.readouterr().out.strip().rsplit(" [", 1)
    row = next(r for r in read_csv(zoo_csv) if r["path"] == str(root / "plain" / "a.png"))
    assert label == row["label"]
    got = [float(v) for v in probs.rstrip("]").split(",")]
    assert np.allclose(got, [float(row[c]) for c in PROB_COLUMNS], atol=2e-6, rtol=1e-5)


def test_split_preprocess_is_bit_identical(model: Model, zoo: tuple[Path, dict[str, Any]]) -> None:
    """Workers send uint8, the batch is normalised later: exactly ``preprocess(img)``."""
    from kmat_cli.images import load_image
    from kmat_cli.predict import SplitPreprocess

    root, info = zoo
    pre = load_classifier(embeddings=model.prompts, device="cpu").backbone.preprocess
    split = SplitPreprocess(pre)
    assert split.head is not None
    names = [*info["plain"], "odd/grey16.png", "odd/cmyk.jpg", "odd/alpha.png", "dicom/CT_small.dcm"]
    imgs = [load_image(root / n) for n in names]
    parts = [split(img) for img in imgs]
    assert all(x.dtype == torch.uint8 for x in parts)
    assert torch.equal(split.finish(torch.stack(parts)), torch.stack([pre(img) for img in imgs]))
    whole = SplitPreprocess(lambda img: pre(img) * 2)  # not a Compose: runs whole in the workers
    assert whole.head is None and torch.equal(whole(imgs[0]), pre(imgs[0]) * 2)
    assert torch.equal(whole.finish(whole(imgs[0])[None])[0], pre(imgs[0]) * 2)


def test_fifo_and_broken_link_get_error_rows_without_hanging(model: Model, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (9, 7), (200, 10, 10)).save(folder / "a.png")
    os.mkfifo(folder / "b.png")  # opening it would block forever
    (folder / "c.png").symlink_to(folder / "missing.png")
    out = tmp_path / "o.csv"
    summary = run_predict([folder], embeddings=model.prompts, output=out, workers=0)
    rows = read_csv(out)
    assert [Path(r["path"]).name for r in rows] == ["a.png", "b.png", "c.png"]
    assert rows[0]["label"] in CLASSES and rows[1]["error"] == "not a regular file"
    assert rows[2]["error"] == "broken symbolic link" and summary.ok == 1 and summary.failed == 2
