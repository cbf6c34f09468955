"""``kmat predict``: classify files and folders of images with exported prompt embeddings.

The model is the backbone's image tower ``f`` (built with ``vision_only=True``: no text tower) and the
class embeddings ``E`` (K x D) of one modality read from ``prompts.safetensors``:

    p(class | x) = softmax(s * normalize(f(preprocess(x))) @ E^T)        s = kmat.logit_scale

Pipeline: :func:`find_inputs` lists the inputs in a deterministic order; :class:`ImageFiles` decodes and
preprocesses them in DataLoader worker processes while the main process runs the model on the previous
batch; :class:`RowWriter` streams one row per image (one per DICOM frame) to the output, one ``write``
and flush per batch, so rows written before a crash, a kill or Ctrl-C stay complete and readable. A file
that cannot be read gets a row with its error and the run goes on.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torch.nn.functional as F

from kmat_cli import outputs
from kmat_cli.api import Backbone
from kmat_cli.devices import resolve_device
from kmat_cli.errors import UsageError
from kmat_cli.images import IMAGE_SUFFIXES, Frames, ImageError, is_dicom, load_frames
from kmat_cli.signals import ParentWatch, Terminated, terminate_as_interrupt

__all__ = [
    "FORMATS",
    "Classifier",
    "ImageFiles",
    "Row",
    "RowWriter",
    "SplitPreprocess",
    "Summary",
    "find_inputs",
    "load_classifier",
    "predict",
    "run_predict",
]

FORMATS = ("csv", "jsonl")
PROB_PREFIX = "prob_"
_MAX_AUTO_WORKERS = 8
BROKEN_PIPE_EXIT_CODE = 141
DECODE_SHARE = 0.1  # adaptive workers: start them when decoding a batch takes more than this share of its use


# ------------------------------------------------------------------------------------------------ inputs
def _wanted(entry: os.DirEntry[str]) -> bool:
    """Inside a folder: any non-directory named like an image (a broken link or a FIFO gets an error row),
    or an extension-less regular file that starts like DICOM."""
    suffix = Path(entry.name).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return True
    try:
        return not suffix and entry.is_file() and is_dicom(entry.path)
    except OSError:
        return False


def _walk(top: Path) -> tuple[list[Path], int]:
    """Files under ``top``, sorted by their path relative to ``top`` component by component, and the number
    of entries skipped (hidden files and folders, other file types, unreadable folders, link loops).

    Symbolic links to folders are followed, except a link to the folder it is in or to one of that
    folder's ancestors (a loop), and every real folder is walked once: real folders first (in name
    order), then linked ones, so a second link to a walked folder adds nothing and the result does not
    depend on the order the file system lists entries in."""
    found: list[Path] = []
    skipped = 0
    seen: set[tuple[int, int]] = set()
    stack, links = [top], []
    while stack or links:
        folder = stack.pop() if stack else links.pop(0)
        try:
            st = folder.stat()
            key = (st.st_dev, st.st_ino)
            if key in seen:  # a second link to a folder already walked
                skipped += 1
                continue
            seen.add(key)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            skipped += 1
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                skipped += 1
                continue
            try:
                is_dir = entry.is_dir()  # follows links
            except OSError:
                is_dir = False
            if is_dir and not entry.is_symlink():
                subfolders.append(folder / entry.name)
            elif is_dir:
                target = Path(os.path.realpath(entry.path))
                here = Path(os.path.realpath(folder))
                if target == here or target in here.parents:  # a link loop
                    skipped += 1
                else:
                    links.append(folder / entry.name)
            elif _wanted(entry):
                found.append(folder / entry.name)
            else:
                skipped += 1
        stack.extend(reversed(subfolders))
    found.sort(key=lambda p: p.relative_to(top).parts)
    return found, skipped


def find_inputs(paths: Sequence[str | Path]) -> tuple[list[Path], int]:
    """The input files of ``paths`` in a deterministic order, and the number of entries skipped in folders.

    Arguments keep their order. A folder is walked recursively (:func:`_walk`): hidden entries (names
    starting with ``.``) and files that are neither named like an image (``IMAGE_SUFFIXES``) nor
    extension-less DICOM are skipped. A file given by name is always an input, whatever its name. A path
    that does not exist, or inputs that add up to no file at all, is a ``UsageError``.
    """
    if not paths:
        raise UsageError("give at least one image file or folder")
    files: list[Path] = []
    skipped = 0
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found, n = _walk(path)
            files += found
            skipped += n
        elif path.exists() or path.is_symlink():
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    if not files:
        where = ", ".join(str(p) for p in paths)
        raise UsageError(
            f"no image files found in {where} (looked for {', '.join(IMAGE_SUFFIXES)} and DICOM)"
        )
    return files, skipped


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class Classifier:
    """An image tower and the class embeddings of one modality: ``probabilities(pixels)`` is
    ``softmax(logit_scale * normalize(f(pixels)) @ embeddings.T)``."""

    backbone: Backbone
    embeddings: torch.Tensor  # (K, D) float32, on the backbone's device
    class_names: list[str]
    logit_scale: float
    modality: str
    source: Path

    @torch.inference_mode()
    def probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) preprocessed pixels -> (N, K) float32 class probabilities (on the CPU)."""
        feats = F.normalize(self.backbone.encode_image(pixels).float(), dim=-1)
        logits = self.logit_scale * feats @ self.embeddings.t()
        return logits.softmax(dim=-1).cpu()


def _backbone_section(prompts_file: Path, metadata: Mapping[str, str], run: Path | None) -> dict[str, Any]:
    """The backbone config section (registry name and options) the embeddings were made with: the run's
    config.yaml (the user's own config: any plugin name), else the file's ``kmat.backbone_config``, else a
    config.yaml beside the file; the last two come with the file and may only name an installed backbone
    with options of the right types (:mod:`kmat_cli.file_backbone`)."""
    from kmat_cli.config import load_yaml
    from kmat_cli.file_backbone import checked_section

    config_file = (run or prompts_file.parent) / "config.yaml"
    if run is None and "kmat.backbone_config" in metadata:
        try:
            section = json.loads(metadata["kmat.backbone_config"])
        except (json.JSONDecodeError, RecursionError) as exc:
            raise UsageError(f"{prompts_file}: metadata kmat.backbone_config is not valid JSON") from exc
        return checked_section(section, prompts_file)
    if not config_file.is_file():
        raise UsageError(
            f"{prompts_file}: no kmat.backbone_config metadata and no config.yaml beside it; "
            "pass --run RUN (the run folder it was exported from) or re-export it with `kmat export RUN`"
        )
    section = load_yaml(config_file).get("backbone")
    if run is None:
        return checked_section(section, config_file, key="backbone")
    if isinstance(section, str):
        section = {"name": section}
    if not isinstance(section, dict) or not isinstance(section.get("name"), str):
        raise UsageError(f"{config_file}: no backbone name in its backbone config")
    return section


def _build_backbone(section: Mapping[str, Any], device: torch.device, source: Path) -> Backbone:
    """The backbone of ``section`` built vision-only (only the image tower) on ``device``."""
    import inspect

    from kmat_cli import registry
    from kmat_cli.assemble import _construct

    cls = registry.get("backbones", section["name"])
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        params = {}
    if "vision_only" not in params:
        print(
            f"kmat: note: backbone '{section['name']}' has no vision_only option; its text tower is built too",
            file=sys.stderr,
        )
    try:
        backbone = _construct("backbones", section, vision_only=True, device=str(device))
    except TypeError as exc:
        raise UsageError(
            f"{source}: backbone config {dict(section)} does not fit '{section['name']}': {exc}"
        ) from exc
    backbone.to(device)
    return backbone


def check_match(prompts: Any, backbone: Backbone, source: Path) -> None:
    """Raise a one-line ``UsageError`` unless the embeddings were made with this backbone: same
    ``kmat.embed_dim`` and embedding width, same ``kmat.backbone`` id, same preprocessing."""
    meta = prompts.metadata
    width = {int(e.shape[-1]) for e in prompts.embeddings.values()}
    dims = width | ({int(meta["kmat.embed_dim"])} if meta.get("kmat.embed_dim", "").isdigit() else set())
    if dims != {int(backbone.embed_dim)}:
        raise UsageError(
            f"{source}: embeddings have dimension {'/'.join(map(str, sorted(dims)))} but backbone "
            f"{backbone.id} gives {backbone.embed_dim}; use the prompts exported with this backbone"
        )
    if prompts.backbone != backbone.id:
        raise UsageError(
            f"{source}: embeddings were made with backbone '{prompts.backbone}' but the backbone built "
            f"for them is '{backbone.id}'; use the matching run (--run) or re-export the prompts"
        )
    mine = json.loads(json.dumps(backbone.preprocess_spec, sort_keys=True))
    if "kmat.preprocess" in meta and prompts.preprocess != mine:
        raise UsageError(
            f"{source}: embeddings expect preprocessing {json.dumps(prompts.preprocess, sort_keys=True)} "
            f"but backbone {backbone.id} has {json.dumps(mine, sort_keys=True)}"
        )


def _check_run_classes(class_names: Sequence[str], run: Path, source: Path) -> None:
    """With ``--run``, the embeddings must be for the run's task: the same classes in the same order (a file
    copied in from another run would label every image with the wrong names). Skipped when the run's task
    cannot be built any more (e.g. its YAML moved): the file's own class names are used then."""
    from kmat_cli.assemble import build_task
    from kmat_cli.config import load_yaml
    from kmat_cli.errors import KmatError

    try:
        expected = list(build_task(load_yaml(run / "config.yaml")).class_names)
    except (KmatError, KeyError, TypeError):
        return
    if list(class_names) != expected:
        raise UsageError(
            f"{source}: embeddings are for classes {list(class_names)} but the run's task has {expected}; "
            f"export them again with `kmat export {run}`"
        )


def load_classifier(
    *,
    run: str | Path | None = None,
    embeddings: str | Path | None = None,
    modality: str = "lo",
    device: str | torch.device = "auto",
) -> Classifier:
    """Read the embeddings (``RUN/prompts.safetensors`` or ``embeddings``), build the matching image tower
    (vision-only) and check that the two belong together (:func:`check_match`)."""
    from kmat_cli import export, runs

    if (run is None) == (embeddings is None):
        raise UsageError("give exactly one of --run RUN or --embeddings prompts.safetensors")
    run_path = runs.open_run(run).path if run is not None else None
    source = run_path / export.PROMPTS_FILE if run_path is not None else Path(embeddings)  # type: ignore[arg-type]
    if run_path is not None and not source.is_file():
        raise UsageError(f"{run_path}: no {export.PROMPTS_FILE} yet; run `kmat export {run_path}` first")
    try:
        prompts = export.read_prompts(source)
    except (KeyError, json.JSONDecodeError, ValueError) as exc:
        raise UsageError(f"{source}: incomplete kmat metadata ({type(exc).__name__}: {exc})") from exc
    if modality not in prompts.embeddings:
        known = ", ".join(sorted(prompts.embeddings)) or "none"
        raise UsageError(f"{source}: no embeddings for modality '{modality}' (has: {known})")
    emb = prompts.embeddings[modality]
    if emb.dim() != 2 or emb.shape[0] != len(prompts.class_names):
        raise UsageError(
            f"{source}: text_embeddings.{modality} has shape {tuple(emb.shape)}, "
            f"expected ({len(prompts.class_names)}, D) for {len(prompts.class_names)} classes"
        )
    dev = (
        resolve_device(device, option="--device", prefer=("cuda", "mps"))
        if isinstance(device, str)
        else torch.device(device)
    )
    if run_path is not None:
        _check_run_classes(prompts.class_names, run_path, source)
    section = _backbone_section(source, prompts.metadata, run_path)
    backbone = _build_backbone(section, dev, source)
    check_match(prompts, backbone, source)
    return Classifier(
        backbone=backbone,
        embeddings=emb.float().to(dev),
        class_names=list(prompts.class_names),
        logit_scale=float(prompts.logit_scale),
        modality=modality,
        source=source,
    )


# ---------------------------------------------------------------------------------------------- decoding
class SplitPreprocess:
    """A backbone's ``preprocess`` as two steps with the same result: ``self(img)`` in the decoding
    workers, then ``finish(batch)`` on whole batches.

    For a torchvision/open_clip ``Compose([..., ToTensor(), Normalize(mean, std)])`` the workers stop at
    uint8 RGB pixels (a quarter of the bytes to move between processes) and ``finish`` computes
    ``(x / 255 - mean) / std`` for the whole batch with torchvision's own elementwise operations, so the
    values are bit-for-bit those of ``preprocess(img)``. Any other transform runs whole in the workers and
    ``finish`` returns its batch unchanged.
    """

    def __init__(self, preprocess: Callable[[Any], torch.Tensor]) -> None:
        from torchvision.transforms import Compose, Normalize, ToTensor

        self.preprocess = preprocess
        self.head: Callable[[Any], Any] | None = None
        steps = getattr(preprocess, "transforms", None)
        if (
            isinstance(preprocess, Compose)
            and isinstance(steps, list)
            and len(steps) >= 2
            and isinstance(steps[-2], ToTensor)
            and isinstance(steps[-1], Normalize)
        ):
            from PIL import Image as PILImage

            self._pil_image = PILImage.Image
            self.head = Compose(steps[:-2])
            self.tail = Compose(steps[-2:])
            dtype = torch.get_default_dtype()
            self.mean = torch.as_tensor(steps[-1].mean, dtype=dtype).view(-1, 1, 1)
            self.std = torch.as_tensor(steps[-1].std, dtype=dtype).view(-1, 1, 1)

    def __call__(self, img: Any) -> torch.Tensor:
        """Worker side: uint8 (3, H, W) when the split applies and the image is RGB, else the full result."""
        if self.head is None:
            return self.preprocess(img)
        x = self.head(img)
        if isinstance(x, self._pil_image) and x.mode == "RGB":
            # torchvision's pil_to_tensor without its per-call overhead: the same (3, H, W) uint8 view
            return torch.from_numpy(np.array(x)).permute(2, 0, 1)
        return self.tail(x)

    def finish(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> normalised float, as ``ToTensor`` then ``Normalize`` (float input as is)."""
        if pixels.dtype != torch.uint8:
            return pixels
        dev = pixels.device
        x = pixels.to(dtype=torch.get_default_dtype()).div(255)
        return x.sub_(self.mean.to(dev)).div_(self.std.to(dev))


Item = tuple[int, "int | None", "torch.Tensor | None", "str | None"]  # (file index, frame, pixels, error)
Batch = tuple[list[tuple[int, "int | None", "str | None"]], "torch.Tensor | None"]


class ImageFiles(torch.utils.data.Dataset):
    """``files[i]`` -> its images, decoded and preprocessed (worker side of :class:`SplitPreprocess`):
    ``[(i, frame, pixels, None)]`` per frame, or ``[(i, None, None, error)]`` when the file cannot be read
    (never raises for a bad file). :meth:`__getitems__` decodes a whole batch in one call (the DataLoader
    uses it when present), so per-file overhead such as the warnings filter is paid once per batch."""

    def __init__(self, files: Sequence[Path], preprocess: SplitPreprocess, frames: Frames) -> None:
        self.files = list(files)
        self.preprocess = preprocess
        self.frames = frames

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> list[Item]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[list[Item]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. Pillow's large-image warning: keep stderr for progress
            return [self._decode(i) for i in indices]

    def _decode(self, i: int) -> list[Item]:
        try:
            return [
                (i, frame, self.preprocess(img), None)
                for frame, img in load_frames(self.files[i], self.frames)
            ]
        except ImageError as exc:
            return [(i, None, None, exc.reason)]
        except Exception as exc:  # a preprocessing failure is this file's error too
            detail = " ".join(str(exc).split())
            return [(i, None, None, f"cannot preprocess image ({type(exc).__name__}: {detail})")]


class Collate:
    """A batch of files -> ((file index, frame, error) per row, the stacked pixels of the rows without
    error). ``finish_here``: apply ``finish`` to the stacked batch now; otherwise uint8 pixels stay uint8
    (a quarter of the bytes to move; the consumer normalises the whole batch). Mixed uint8/float batches
    are made float first. ``as_numpy``: the pixels as a numpy array, which crosses from a worker process
    to the main one inside the pickled batch (one copy through the pipe) instead of as a shared-memory
    tensor, whose file-descriptor hand-over costs a socket connection and an authentication per batch."""

    def __init__(
        self,
        finish: Callable[[torch.Tensor], torch.Tensor],
        finish_here: bool = False,
        as_numpy: bool = False,
    ) -> None:
        self.finish = finish
        self.finish_here = finish_here
        self.as_numpy = as_numpy

    def __call__(self, items: list[list[Item]]) -> Batch:
        rows = [(i, frame, err) for item in items for i, frame, _, err in item]
        pixels = [x for item in items for _, _, x, _ in item if x is not None]
        if len({x.dtype for x in pixels}) > 1:
            pixels = [self.finish(x[None])[0] for x in pixels]
        batch = torch.stack(pixels) if pixels else None
        if batch is not None and self.finish_here:
            batch = self.finish(batch)
        if batch is not None and self.as_numpy:
            return rows, batch.numpy()  # type: ignore[return-value]
        return rows, batch


def batches(
    files: Sequence[Path],
    preprocess: SplitPreprocess,
    *,
    batch_size: int,
    workers: int,
    frames: Frames = "all",
    pin_memory: bool = False,
    finish: bool = True,
    adaptive: bool = False,
) -> Iterator[Batch]:
    """Decoded batches of ``batch_size`` files, in order; ``workers`` > 0 decodes in that many processes
    ahead of the consumer (4 batches each), 0 in the calling process. ``finish=False`` leaves uint8 pixels
    for the caller to pass through ``preprocess.finish`` (e.g. on a GPU).

    With workers, the batch at hand when they start is decoded in the calling process while they start
    (their start and first batch would otherwise be waited for), and the workers decode the rest. Without
    pinned memory (the CPU path) the workers send uint8 pixels as numpy arrays (see :class:`Collate`); this
    function yields them as tensors, normalised here when ``finish``.

    ``adaptive``: the first batch is decoded here and the workers start only if decoding it took more than
    :data:`DECODE_SHARE` of the time the consumer then spent on it (the model, the rows): where the model
    already uses every core, a decoding process only takes cores from it."""
    dataset = ImageFiles(files, preprocess, frames)
    here = Collate(preprocess.finish, finish_here=finish)
    chunks = [range(i, min(i + batch_size, len(files))) for i in range(0, len(files), batch_size)]
    first = 0
    if adaptive and len(chunks) < 3:  # too few batches to measure and then gain anything
        workers = 0
    if adaptive and workers > 0:
        start = time.perf_counter()
        batch = here(dataset.__getitems__(chunks[0]))
        decoding = time.perf_counter() - start
        start = time.perf_counter()
        yield batch
        if decoding <= DECODE_SHARE * (time.perf_counter() - start):
            workers = 0
        first = 1
    if workers <= 0 or len(chunks) - first < 2:
        for chunk in chunks[first:]:
            yield here(dataset.__getitems__(chunk))
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(
        dataset,
        batch_sampler=chunks[first + 1 :],
        num_workers=min(workers, len(chunks) - first - 1),
        collate_fn=Collate(preprocess.finish, finish_here=False, as_numpy=not pin_memory),
        pin_memory=pin_memory,
        prefetch_factor=4,
        worker_init_fn=ParentWatch(),  # a worker ends with this process, even when it is SIGKILLed
    )
    stream = iter(loader)  # the workers start on the batch after this one
    closer: threading.Thread | None = None
    try:
        yield here(dataset.__getitems__(chunks[first]))
        for n in range(first + 1, len(chunks)):
            rows, pixels = next(stream)
            if n == len(chunks) - 1:  # the last batch: the workers exit while the consumer uses it
                closer = threading.Thread(target=next, args=(stream, None), daemon=True)
                closer.start()
            if pixels is not None and not isinstance(pixels, torch.Tensor):
                pixels = torch.from_numpy(pixels)
            if pixels is not None and finish:
                pixels = preprocess.finish(pixels)
            yield rows, pixels
    finally:
        if closer is not None:
            closer.join()
        del stream  # shuts the workers down (if not done yet), also when the consumer stops early


# ------------------------------------------------------------------------------------------------ output
@dataclass
class Row:
    """One output row: the input path, its frame (multi-frame DICOM, else None), the class probabilities
    (None on error) and the error (None on success)."""

    path: Path
    frame: int | None
    probs: Sequence[float] | None
    error: str | None


_NUM = "{:.7g}".format  # probabilities as written: 7 significant digits


def _num(p: float) -> str:
    return _NUM(p)


def path_text(path: Path | str) -> str:
    """A path as text for the output: as is when it is valid Unicode; a name that is not valid UTF-8 (its
    undecodable bytes became lone surrogates, as ``os.fsdecode`` does) with each such byte written as
    ``\\xNN`` (Python's ``backslashreplace``, so bytes 0x80-0xff only), keeping the output valid UTF-8."""
    text = str(path)
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", errors="backslashreplace")
    return text


# Line breaks that str.splitlines() honours but JSON leaves unescaped: escaped so a JSONL row is one line.
_JSON_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


class RowWriter:
    """Rows as CSV or JSON lines on a binary stream: one ``write`` and a flush per batch, so the output
    always ends with complete rows.

    CSV columns: ``path, frame, label, prob_<class>..., error``; JSONL keys: ``path, frame, label,
    probabilities ({class: p}), error``. Error rows have an empty label and probabilities (null in JSON).
    A row is always one record: CSV fields holding a line break (``\\n`` or ``\\r``), a comma or a quote
    are quoted; JSON escapes control characters and Unicode line separators. Paths that are not valid UTF-8
    are escaped (:func:`path_text`), so the whole output is valid UTF-8.
    """

    def __init__(self, stream: BinaryIO, class_names: Sequence[str], fmt: str = "csv") -> None:
        if fmt not in FORMATS:
            raise UsageError(f"unknown format '{fmt}'; use one of: {', '.join(FORMATS)}")
        self.stream = stream
        self.class_names = list(class_names)
        self.fmt = fmt

    @property
    def columns(self) -> list[str]:
        return ["path", "frame", "label", *[PROB_PREFIX + c for c in self.class_names], "error"]

    def header(self) -> None:
        if self.fmt == "csv":
            self._emit(self._csv([self.columns]))

    def write(self, rows: Sequence[Row]) -> None:
        if not rows:
            return
        if self.fmt == "csv":
            self._emit(self._csv(self._csv_rows(rows)))
        else:
            lines = (json.dumps(self._json_row(r), ensure_ascii=False) + "\n" for r in rows)
            self._emit("".join(lines).translate(_JSON_LINE_BREAKS))

    def _label(self, row: Row) -> str | None:
        if row.probs is None:
            return None
        probs = row.probs
        return self.class_names[list(probs).index(max(probs))]  # the first most probable class

    def _csv_rows(self, rows: Sequence[Row]) -> list[list[str]]:
        """The CSV cells of ``rows`` (one loop, no call per cell: this runs in the model's process)."""
        names, empty, num = self.class_names, [""] * len(self.class_names), _NUM
        out = []
        for row in rows:
            frame = "" if row.frame is None else str(row.frame)
            probs = row.probs
            path = path_text(row.path)
            if probs is None:
                out.append([path, frame, "", *empty, row.error or ""])
            else:
                probs = list(probs)
                label = names[probs.index(max(probs))]  # the first most probable class
                out.append([path, frame, label, *map(num, probs), row.error or ""])
        return out

    def _json_row(self, row: Row) -> dict[str, Any]:
        probs = None
        if row.probs is not None:
            probs = {c: float(_num(p)) for c, p in zip(self.class_names, row.probs, strict=True)}
        return {
            "path": path_text(row.path),
            "frame": row.frame,
            "label": self._label(row),
            "probabilities": probs,
            "error": row.error,
        }

    @staticmethod
    def _csv(rows: list[list[str]]) -> str:
        """CSV lines ending in ``\\n``. The csv module quotes only fields holding a character of its line
        terminator: rows are written with ``\\r\\n`` (so a ``\\r`` or ``\\n`` in a field is quoted), then
        each row's own terminator becomes ``\\n``."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\r\n")
        lines = []
        for row in rows:
            buf.seek(0)
            buf.truncate()
            writer.writerow(row)
            lines.append(buf.getvalue()[:-2])
        return "\n".join(lines) + "\n"

    def _emit(self, text: str) -> None:
        view = memoryview(text.encode("utf-8", errors="backslashreplace"))
        start = self.stream.tell() if getattr(self.stream, "seekable", lambda: False)() else None
        try:
            while view:
                n = self.stream.write(view)
                view = view[n if n is not None else len(view) :]
            self.stream.flush()
        except OSError:
            if start is not None:  # e.g. a full disk: cut the torn rows off, the file ends with whole rows
                with contextlib.suppress(OSError):
                    self.stream.truncate(start)
            raise


# ------------------------------------------------------------------------------------------------- running
@dataclass
class Summary:
    """Counts of a predict run: ``ok`` and ``failed`` rows, ``files`` read, folder entries ``skipped``."""

    ok: int = 0
    failed: int = 0
    files: int = 0
    total_files: int = 0
    skipped: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    broken_pipe: bool = False
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 if any image was classified, else 1; 141 (128 + SIGPIPE, as a shell reports a process ended by
        a closed pipe) when the reader of the output left before the end, e.g. ``kmat predict ... | head``."""
        if self.broken_pipe:
            return BROKEN_PIPE_EXIT_CODE
        return 0 if self.ok else 1

    def line(self) -> str:
        rate = self.ok / self.seconds if self.seconds > 0 else 0.0
        head = "interrupted after" if self.interrupted else "done:"
        noun = "entry" if self.skipped == 1 else "entries"
        skipped = f", {self.skipped} other {noun} skipped" if self.skipped else ""
        return (
            f"kmat: predict {head} {self.ok} ok, {self.failed} failed ({self.files} of {self.total_files} files"
            f"{skipped}) in {self.seconds:.1f} s, {rate:.1f} images/s"
        )


def auto_workers(n_files: int, batch_size: int, device: str | torch.device) -> tuple[int, bool]:
    """(decoding processes, adaptive) for ``--workers`` left out.

    On a GPU (any device but the CPU): one process per CPU core but one (left to the main process), at
    least 1, at most 8. On the CPU: the cores torch's threads leave free (``cores - torch threads``, at most
    8), started at once; when torch's threads take every core, ``cores - 1`` (at least 1, at most 8) but
    adaptive (see :func:`batches`: only if decoding is a real share of the work). Never more processes than
    there are batches."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n_batches = math.ceil(n_files / max(1, batch_size))
    spare = cores - torch.get_num_threads()
    if torch.device(device).type == "cpu" and spare < 1:
        return max(0, min(_MAX_AUTO_WORKERS, max(1, cores - 1), n_batches)), True
    free = spare if torch.device(device).type == "cpu" else cores - 1
    return max(0, min(_MAX_AUTO_WORKERS, max(1, free), n_batches)), False


def _progress(enabled: bool, total: int) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """(advance(files, images), stop) of a rich progress bar on stderr with images/s."""
    if not enabled:
        return (lambda files, images: None), (lambda: None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("predict"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn("{task.fields[speed]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("predict", total=total, speed="")
    started = time.perf_counter()
    count = [0]

    def advance(files: int, images: int) -> None:
        count[0] += images
        rate = count[0] / max(time.perf_counter() - started, 1e-9)
        bar.update(task, advance=files, speed=f"{rate:.1f} images/s")

    bar.start()
    return advance, bar.stop


def predict(
    classifier: Classifier,
    files: Sequence[Path],
    writer: RowWriter,
    *,
    batch_size: int = 64,
    workers: int | None = None,
    frames: Frames = "all",
    progress: bool = False,
    summary: Summary | None = None,
    threads: int | None = None,
) -> Summary:
    """Classify ``files`` and stream their rows to ``writer`` (header included); returns the counts.

    ``batch_size`` files are decoded per batch and at most ``batch_size`` images go through the model at
    once. On the CPU, torch's threads follow :mod:`kmat_cli.threads` (``threads``: an explicit count). On
    ``KeyboardInterrupt`` (or :class:`~kmat_cli.signals.Terminated`: SIGTERM) the rows of finished batches are
    already written; the summary (marked interrupted) is printed to stderr and the interrupt re-raised.
    """
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if workers is not None and workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {workers}")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    summary = summary if summary is not None else Summary()
    summary.total_files = len(files)
    device = classifier.backbone.device if hasattr(classifier.backbone, "device") else torch.device("cpu")
    if threads is not None or torch.device(device).type == "cpu":
        from kmat_cli import threads as policy

        policy.apply(threads or 0, reserved=min(workers or 0, len(files)))
    n_workers, adaptive = (
        auto_workers(len(files), batch_size, device) if workers is None else (min(workers, len(files)), False)
    )
    cuda = torch.device(device).type == "cuda"
    split = SplitPreprocess(classifier.backbone.preprocess)
    started = time.perf_counter()
    advance, stop = _progress(progress, len(files))
    writer.header()
    stream = batches(
        files,
        split,
        batch_size=batch_size,
        workers=n_workers,
        frames=frames,
        pin_memory=cuda,
        finish=torch.device(device).type == "cpu",
        adaptive=adaptive,
    )
    try:
        for rows, pixels in stream:
            probs = None
            if pixels is not None:
                pixels = split.finish(pixels.to(device, non_blocking=cuda))
                chunks = [
                    classifier.probabilities(pixels[i : i + batch_size])
                    for i in range(0, len(pixels), batch_size)
                ]
                probs = torch.cat(chunks).tolist()
            out, j = [], 0
            for index, frame, error in rows:
                if error is None:
                    out.append(Row(files[index], frame, probs[j], None))  # type: ignore[index]
                    j += 1
                else:
                    out.append(Row(files[index], frame, None, error))
                    summary.failures.append((str(files[index]), error))
            writer.write(out)
            summary.ok += j
            summary.failed += len(out) - j
            n_files = len({index for index, _, _ in rows})
            summary.files += n_files
            advance(n_files, j)
    except (KeyboardInterrupt, Terminated):
        summary.interrupted = True
        raise
    finally:
        stream.close()  # the decoding workers exit now, also on an error or an interrupt
        stop()
        summary.seconds = time.perf_counter() - started
    return summary


def run_predict(
    paths: Sequence[str | Path],
    *,
    run: str | Path | None = None,
    embeddings: str | Path | None = None,
    modality: str = "lo",
    fmt: str = "csv",
    output: str | Path | None = None,
    batch_size: int = 64,
    workers: int | None = None,
    frames: Frames = "all",
    device: str = "auto",
    progress: bool | None = None,
    threads: int | None = None,
) -> Summary:
    """What ``kmat predict`` does: find the inputs, load the classifier, stream rows to ``output`` (stdout
    when None), print the summary line to stderr. Bad usage raises ``UsageError`` before any row."""
    if fmt not in FORMATS:
        raise UsageError(f"--format '{fmt}' is not known; use one of: {', '.join(FORMATS)}")
    if frames not in ("all", "first"):
        raise UsageError(f"--frames '{frames}' is not known; use all or first")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if workers is not None and workers < 0:
        raise UsageError(f"--workers must be 0 or more, got {workers}")
    files, skipped = find_inputs(paths)
    if output is not None:
        output = Path(output)
        outputs.check_output(output, paths, files)
    stream = outputs.stdout_stream() if output is None else None
    classifier = load_classifier(run=run, embeddings=embeddings, modality=modality, device=device)
    if output is not None:
        outputs.check_output(output, paths, (), protected=[classifier.source])
        stream = outputs.open_output(output)
    summary = Summary(skipped=skipped)
    show = sys.stderr.isatty() if progress is None else progress
    try:
        with terminate_as_interrupt():
            predict(
                classifier,
                files,
                RowWriter(stream, classifier.class_names, fmt),
                batch_size=batch_size,
                workers=workers,
                frames=frames,
                progress=show,
                summary=summary,
                threads=threads,
            )
    except BrokenPipeError:  # `kmat predict ... | head`: the reader left; stop quietly, exit as SIGPIPE would
        if output is None:  # nothing more may reach the closed pipe, not even Python's flush at exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        summary.interrupted = summary.broken_pipe = True
    except OSError as exc:  # e.g. a full disk: one line naming the output file (its rows so far are whole)
        from kmat_cli.atomic import write_error

        summary.interrupted = True
        error = write_error(output if output is not None else "<stdout>", exc)
        if error is None:
            raise
        raise error from exc
    finally:
        if output is not None:
            stream.close()
        print(summary.line(), file=sys.stderr, flush=True)
    return summary
