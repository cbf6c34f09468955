"""The image-feature cache: frozen image features computed once per (backbone, preprocessing, file content).

``image_features(backbone, paths)`` returns ``normalize(f(preprocess(load_image(p))))`` for every path,
(N, D) float32, running the image tower only for images whose features are not cached yet. With
``views = V > 0`` it returns (N, 1 + V, D): the plain view, then V augmented views (:mod:`kmat_cli.views`:
random resized crop, scale (0.08, 1), and horizontal flip, as in CoOp's recipe), each deterministic in
(seed, file content, view index), so every run sees the same views and they can be cached too. Missing
features are computed through the image-file pipeline (:mod:`kmat_cli.imagefiles`), as ``kmat predict``
computes its own.

Layout under the cache dir (``$KMAT_CACHE`` or the user cache dir): ``features/<key>/`` with
``key = sha256({backbone id, preprocess spec, format})[:20]``, an ``info.json`` naming what the key stands
for, and immutable shards ``<time>-<pid>-<rand>.safetensors``: a tensor ``features`` (n, D) and metadata
``keys`` (JSON list of content-hash keys, ``<sha256>`` or ``<sha256>/<aug>/<seed>/<v>`` for views). Shards
are written atomically under unique names, so concurrent writers never corrupt anything (at worst both
compute the same features; readers take any copy). A changed file (new content hash), backbone id or
preprocessing misses the cache. ``file-hashes.json`` memoises content hashes by (path, size, mtime_ns) so
unchanged files are not re-read on every run.

Nothing in the cache is trusted blindly: a shard whose ``features`` are not floating point, not (keys x D)
with D the backbone's ``embed_dim``, not finite, or hold a row that is not a unit vector (the image tower's
features are normalised and never all zero) is reported in one ``kmat: warning:`` line naming it, removed
where possible, and its features are computed again. A memo that is not a JSON object of
``[size, mtime_ns, sha256]`` entries is ignored (wrong entries one by one). Nothing in the cache is read or
written through a symbolic link (:mod:`kmat_cli.atomic`): a planted link, FIFO or device in place of the
memo, a shard or ``info.json`` is ignored and replaced (one warning), and a linked folder under the cache
root is refused (exit code 2). A cache that cannot be written
(read-only, full) never fails a run: the memo is skipped and missing features are computed in memory, with
one warning line per cause.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Sequence
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from kmat_cli import atomic, datafiles, imagefiles
from kmat_cli.api import Backbone
from kmat_cli.atomic import write_json, write_with
from kmat_cli.envinfo import cache_dir as default_cache_dir
from kmat_cli.envinfo import make_cache_folder
from kmat_cli.errors import KmatError, UsageError
from kmat_cli.images import load_image
from kmat_cli.progress import bar, warn
from kmat_cli.views import AUGMENT, augmented

__all__ = ["AUGMENT", "FORMAT", "cache_key", "content_hash", "image_features"]

FORMAT = "kmat.features/v1"
HASH_MEMO = "file-hashes.json"
SHARD_ROWS = 4096
NORM_TOLERANCE = 1e-3  # a cached row's norm may differ from 1 by this much
_warned: set[str] = set()


# -------------------------------------------------------------------------------------------------- keys
def cache_key(backbone: Backbone) -> str:
    """The folder key of a backbone's features: its id and preprocessing, hashed."""
    blob = json.dumps(
        {"format": FORMAT, "backbone": backbone.id, "preprocess": backbone.preprocess_spec}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def content_hash(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _warn(message: str) -> None:
    """One ``kmat: warning: ...`` line on stderr, each message at most once per process."""
    if message not in _warned:
        _warned.add(message)
        warn(message)


def _aug_id() -> str:
    return hashlib.sha256(json.dumps(AUGMENT, sort_keys=True).encode()).hexdigest()[:8]


def _view_key(h: str, seed: int, v: int) -> str:
    return h if v == 0 else f"{h}/{_aug_id()}/{seed}/{v}"


class _HashMemo:
    """Content hashes memoised by (resolved path, size, mtime_ns), persisted as JSON in the cache dir."""

    def __init__(self, root: Path) -> None:
        self.file = root / HASH_MEMO
        self.entries = read_memo(self.file)
        self.dirty = False

    def get(self, path: Path) -> str:
        try:
            st = path.stat()
        except FileNotFoundError as exc:
            raise UsageError(f"{path}: image file not found") from exc
        key = str(path.resolve())
        hit = self.entries.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return str(hit[2])
        digest = content_hash(path)
        self.entries[key] = [st.st_size, st.st_mtime_ns, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        """Merge with what concurrent runs wrote meanwhile (last writer wins per entry) and write the memo;
        where it cannot be written, skip it: it only saves re-reading files next time."""
        if not self.dirty:
            return
        current = read_memo(self.file)
        current.update(self.entries)
        try:
            write_json(self.file, current, indent=0)
        except (OSError, KmatError) as exc:
            _warn(f"content-hash memo not saved ({exc}); images are hashed again next run")
        self.dirty = False


def read_memo(file: Path) -> dict[str, list[Any]]:
    """The entries of a content-hash memo: ``{resolved path: [size, mtime_ns, sha256 hex]}``. A missing,
    unreadable or damaged file, or one holding anything but a JSON object, reads as empty; entries of the
    wrong shape are dropped (the memo is an optimisation: a dropped entry only means hashing the file)."""
    try:
        data = datafiles.read_owned_json(file)
    except (OSError, datafiles.DataError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        key: value
        for key, value in data.items()
        if isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value[:2])
        and isinstance(value[2], str)
        and len(value[2]) == 64
    }


# ------------------------------------------------------------------------------------------------ shards
class _Store:
    """The shards of one cache key: an index from content key to (shard, row), the rows read or computed in
    this process (``rows``), new shards appended. Shards failing :func:`shard_problem` are dropped (warned
    about, removed where possible) so their keys count as missing; where shards cannot be written the new
    rows stay in ``rows`` only."""

    def __init__(self, folder: Path, dim: int | None) -> None:
        self.folder = folder
        self.dim = dim
        self.index: dict[str, tuple[Path, int]] = {}
        self.rows: dict[str, torch.Tensor] = {}
        self._keys: dict[Path, list[str]] = {}  # the keys of every shard in use, in scan order
        self._skipped: set[Path] = set()  # foreign, unreadable or damaged files
        self.scan()

    def scan(self) -> None:
        from safetensors import safe_open

        if not self.folder.is_dir():
            return
        for shard in sorted(self.folder.glob("*.safetensors")):
            if shard in self._keys or shard in self._skipped:
                continue
            if atomic.planted(shard):  # a link or FIFO someone put in a shared cache: never read
                self._skipped.add(shard)
                continue
            try:
                with safe_open(str(shard), framework="pt") as f:
                    keys = datafiles.parse_json((f.metadata() or {}).get("keys", "[]"), str(shard))
                if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                    raise ValueError("keys")
            except Exception:  # a foreign or damaged file is ignored, never trusted
                self._skipped.add(shard)
                continue
            self._keys[shard] = keys
            for row, key in enumerate(keys):
                self.index.setdefault(key, (shard, row))

    def fetch(self, keys: Sequence[str]) -> None:
        """Read into ``rows`` the features of ``keys`` that the index has, each shard read once; a shard
        that fails :func:`shard_problem` is dropped, and a copy of its keys in another shard used instead."""
        from safetensors import safe_open

        while True:
            by_shard: dict[Path, list[tuple[str, int]]] = {}
            for key in dict.fromkeys(keys):
                if key not in self.rows and key in self.index:
                    shard, row = self.index[key]
                    by_shard.setdefault(shard, []).append((key, row))
            dropped = False
            for shard, items in by_shard.items():
                try:
                    with safe_open(str(shard), framework="pt") as f:
                        table = f.get_tensor("features")
                except Exception as exc:  # removed by another run meanwhile, or damaged since the scan
                    self._drop(shard, f"unreadable ({type(exc).__name__})", remove=False)
                    dropped = True
                    continue
                problem = shard_problem(table, len(self._keys[shard]), self.dim)
                if problem:
                    self._drop(shard, problem, remove=True)
                    dropped = True
                    continue
                rows = table[torch.tensor([r for _, r in items], dtype=torch.long)].float()
                self.rows.update({key: rows[i] for i, (key, _) in enumerate(items)})
            if not dropped:
                return

    def _drop(self, shard: Path, problem: str, *, remove: bool) -> None:
        """Stop using ``shard`` (one warning); ``remove``: delete it too (its content was checked bad)."""
        _warn(f"{shard}: damaged feature-cache shard ({problem}); its features are computed again")
        self._skipped.add(shard)
        del self._keys[shard]
        self.index = {}
        for other, keys in self._keys.items():
            for row, key in enumerate(keys):
                self.index.setdefault(key, (other, row))
        if remove:
            with suppress(OSError):  # a read-only cache keeps it; it is dropped again next time
                shard.unlink()

    def add(self, keys: Sequence[str], feats: torch.Tensor, meta: dict[str, str]) -> None:
        """Keep ``feats`` (one row per key) in ``rows`` and write them as a new shard, unless the cache
        cannot be written (then one warning: they are computed again next run)."""
        from safetensors.torch import save_file

        if not keys:
            return
        tensors = {"features": feats.detach().float().cpu().contiguous()}
        self.rows.update({key: tensors["features"][i] for i, key in enumerate(keys)})
        name = f"{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.safetensors"
        dest = self.folder / name
        metadata = {**meta, "keys": json.dumps(list(keys))}
        try:
            write_with(dest, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
        except (OSError, KmatError) as exc:
            _warn(f"feature cache not written ({exc}); features are computed in memory for this run")
            return
        self._keys[dest] = list(keys)
        for row, key in enumerate(keys):
            self.index.setdefault(key, (dest, row))


def shard_problem(table: torch.Tensor, n_keys: int, dim: int | None) -> str | None:
    """What is wrong with a shard's ``features`` tensor for ``n_keys`` keys of a ``dim``-d backbone (None:
    nothing): not floating point, not (n_keys, dim), NaN or inf, or a row whose norm is not 1 within
    ``NORM_TOLERANCE`` (stored features are normalised: an all-zero row is damage, not a feature)."""
    if not table.is_floating_point():
        return f"dtype {str(table.dtype).removeprefix('torch.')}, not floating point"
    want = (n_keys, dim if dim is not None else (table.shape[-1] if table.ndim == 2 else -1))
    if tuple(table.shape) != want:
        return f"shape {tuple(table.shape)}, expected {want}"
    values = table.float()
    if not bool(torch.isfinite(values).all()):
        return "NaN or inf features"
    off = int(((values.norm(dim=-1) - 1.0).abs() > NORM_TOLERANCE).sum()) if n_keys else 0
    if off:
        return f"{off} of {n_keys} rows are not unit vectors (e.g. all zero)"
    return None


# -------------------------------------------------------------------------------------------- computing
class ViewReader:
    """The ``read`` of the feature cache's pipeline: one file decoded once (:func:`load_image`) into the views
    it is asked for, ``(path, [(content hash, view index)])`` -> ``[((hash, view), pixels)]``; view 0 is the
    plain preprocessed image, view v > 0 an augmented one (:func:`kmat_cli.views.augmented`)."""

    def __init__(self, spec: dict[str, Any], seed: int) -> None:
        self.spec = spec
        self.seed = seed

    def __call__(self, job: tuple[Path, list[tuple[str, int]]], preprocess: Any) -> list[tuple[Any, Any]]:
        path, wants = job
        img = load_image(path)
        return [
            ((h, v), preprocess(img) if v == 0 else augmented(img, self.spec, self.seed, h, v))
            for h, v in wants
        ]


def image_features(
    backbone: Backbone,
    paths: Sequence[str | Path],
    *,
    batch_size: int = 64,
    views: int = 0,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    seed: int = 0,
    failures: dict[int, str] | None = None,
) -> torch.Tensor:
    """Normalised frozen image features of ``paths``, from the cache where possible.

    Returns (N, D) float32, or (N, 1 + views, D) with ``views > 0`` (index 0 the plain view). Features
    are keyed by (backbone id, preprocess spec, file content hash[, augmentation, seed, view]). An
    unreadable file raises ``UsageError``; pass a dict as ``failures`` to get NaN rows instead and the
    messages by row index (``kmat predict`` reports them per file).
    """
    if views < 0:
        raise UsageError(f"views must be >= 0, got {views}")
    files = [Path(p) for p in paths]
    root = Path(cache_dir) if cache_dir is not None else make_cache_folder(default_cache_dir())
    atomic.own(root)
    folder = root / "features" / cache_key(backbone)
    atomic.check_owned(folder)  # a linked folder in a shared cache would feed or receive foreign shards
    memo = _HashMemo(root)
    hashes: list[str | None] = []
    for i, p in enumerate(files):
        try:
            hashes.append(memo.get(p))
        except (UsageError, OSError) as exc:
            if failures is None:
                raise UsageError(str(exc) if isinstance(exc, UsageError) else f"{p}: {exc}") from exc
            failures[i] = str(exc)
            hashes.append(None)
    try:
        dim = getattr(backbone, "embed_dim", None)
        store = _Store(folder, int(dim) if isinstance(dim, int) else None)
        n_views = 1 + views
        wanted = sorted({(h, v) for h in hashes if h is not None for v in range(n_views)})
        store.fetch([_view_key(h, seed, v) for h, v in wanted])
        missing = [hv for hv in wanted if _view_key(hv[0], seed, hv[1]) not in store.rows]
        if missing:
            store.scan()  # a concurrent run may have written them meanwhile
            store.fetch([_view_key(h, seed, v) for h, v in missing])
            missing = [hv for hv in missing if _view_key(hv[0], seed, hv[1]) not in store.rows]
        if missing:
            _ensure_info(folder, backbone)
            bad = _compute(backbone, files, hashes, missing, store, batch_size, seed, progress)
            for i, h in enumerate(hashes):
                if h in bad:
                    if failures is None:
                        raise UsageError(bad[h])
                    failures[i] = bad[h]
                    hashes[i] = None
    finally:
        memo.save()
    table = store.rows
    dim = next(iter(table.values())).shape[-1] if table else int(backbone.embed_dim)
    out = torch.full((len(files), n_views, dim), float("nan"))
    for i, h in enumerate(hashes):
        if h is not None:
            out[i] = torch.stack([table[_view_key(h, seed, v)] for v in range(n_views)])
    return out[:, 0] if views == 0 else out


def _ensure_info(folder: Path, backbone: Backbone) -> None:
    """Write ``info.json`` (what the key stands for, for people) if missing; skipped where it cannot be."""
    info = folder / "info.json"
    if atomic.planted(info) or not info.is_file():
        with suppress(OSError, KmatError):  # not writable: the shard write says so
            write_json(
                info, {"format": FORMAT, "backbone": backbone.id, "preprocess": backbone.preprocess_spec}
            )


def _compute(
    backbone: Backbone,
    paths: Sequence[Path],
    hashes: Sequence[str | None],
    missing: Sequence[tuple[str, int]],
    store: _Store,
    batch_size: int,
    seed: int,
    progress: bool,
) -> dict[str, str]:
    """Run the image tower on the missing (hash, view) pairs through the image-file pipeline
    (:func:`kmat_cli.imagefiles.encoded`: each file decoded once, at most ``batch_size`` views per batch),
    one shard per ``SHARD_ROWS`` rows.

    Returns {content hash: error message} for files that could not be decoded or whose features are not
    finite unit vectors (never cached: such a file is reported like an unreadable one)."""
    first_path: dict[str, Path] = {}
    for p, h in zip(paths, hashes, strict=True):
        if h is not None:
            first_path.setdefault(h, p)
    per_file: dict[str, list[tuple[str, int]]] = {}
    for h, v in missing:
        per_file.setdefault(h, []).append((h, v))
    jobs = [(first_path[h], wants) for h, wants in per_file.items()]
    meta = {
        "kmat.format": FORMAT,
        "kmat.backbone": backbone.id,
        "kmat.preprocess": json.dumps(backbone.preprocess_spec),
    }
    bad: dict[str, str] = {}
    pend_keys: list[str] = []
    pend_feats: list[torch.Tensor] = []
    files_per_batch = max(1, batch_size // max(1, max(len(w) for w in per_file.values())))
    read = ViewReader(backbone.preprocess_spec, seed)
    stream = imagefiles.encoded(backbone, jobs, read, batch_size=files_per_batch, chunk=batch_size)
    with closing(stream), bar("image features", len(missing), enabled=progress) as advance:
        for rows, raw in stream:
            for i, _, error in rows:
                if error is not None:
                    bad[jobs[i][1][0][0]] = f"{jobs[i][0]}: {error}"
            keys = [_view_key(tag[0], seed, tag[1]) for _, tag, error in rows if error is None]
            if raw is not None:
                feats = F.normalize(raw, dim=-1).cpu()
                _check_features(keys, feats, first_path, bad)
                keep = [n for n, key in enumerate(keys) if key.split("/", 1)[0] not in bad]
                pend_keys += [keys[n] for n in keep]
                pend_feats.append(feats[keep])
            advance(sum(len(jobs[i][1]) for i in {i for i, _, _ in rows}))
            if len(pend_keys) >= SHARD_ROWS:
                store.add(pend_keys, torch.cat(pend_feats), meta)
                pend_keys, pend_feats = [], []
    store.add(pend_keys, torch.cat(pend_feats) if pend_feats else torch.zeros(0), meta)
    return bad


def _check_features(
    keys: Sequence[str], feats: torch.Tensor, first_path: dict[str, Path], bad: dict[str, str]
) -> None:
    """Mark in ``bad`` the files of ``keys`` whose normalised features are not finite or not unit vectors."""
    finite = torch.isfinite(feats).all(dim=-1).tolist()
    unit = ((feats.norm(dim=-1) - 1.0).abs() <= NORM_TOLERANCE).tolist()
    for key, ok, ok_norm in zip(keys, finite, unit, strict=True):
        h = key.split("/", 1)[0]
        if not ok:
            bad[h] = f"{first_path[h]}: the image tower gave NaN or inf features for it"
        elif not ok_norm:
            bad[h] = f"{first_path[h]}: the image tower gave all-zero features for it"
