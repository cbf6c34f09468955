"""The phantom world: kmat's built-in, offline two-modality task (see :mod:`kmat.tasks.phantom.world`).

Eight lesion classes in four confusable pairs, drawn as 32x32 px PNG files in a crisp colour high-end
modality and a grey, blurred, noisy, low-contrast low-end one. The splits are generated on first use into
``$KMAT_CACHE/phantom/v<generator version>-seed<seed>-<pixel fingerprint>/`` (else the user cache dir), in
a few seconds. Every image is a pure function of (seed, modality, split, index), so every machine with
the same numerics draws the same bytes. The fingerprint (:func:`world.fingerprint`) hashes the first image
of each split, so a generator (or a numpy build) that draws different pixels never reads another's files.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from kmat.tasks.phantom import world

from kmat_cli.api import (
    SEED_MAX,
    Range,
    Sample,
    Task,
    UsageError,
    load_descriptions,
    make_cache_folder,
    read_json,
)

__all__ = ["SIZES", "Phantom"]

SIZES: dict[str, dict[str, int]] = {
    "hi": {"train": 400, "val": 100, "test": 200},
    "lo": {"train": 400, "val": 100, "test": 300},  # kmat never trains on the low-end train split
}
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "kmat.phantom/v1"
DESCRIPTIONS = Path(__file__).with_name("descriptions.json")


def cache_root() -> Path:
    """``$KMAT_CACHE`` or the user cache dir (as ``kmat env`` reports it), plus ``phantom``."""
    env = os.environ.get("KMAT_CACHE")
    if env:
        return Path(env).expanduser() / "phantom"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("kmat")) / "phantom"


class Phantom(Task):
    """The phantom world: 8 lesion classes, high-end "crisp colour scan", low-end "grey low-dose scan".

    Options: ``seed`` (which world: every split is a pure function of it) and ``root`` (the folder that
    holds generated worlds; default ``$KMAT_CACHE/phantom``). Split sizes (train/val/test): high-end
    400/100/200, low-end 400/100/300, classes balanced to within one image.
    """

    name = "phantom"
    # Its models are tiny: one torch thread is fastest, and a second one only waits on a busy machine.
    config: ClassVar[dict] = {"train": {"threads": 1}}
    limits: ClassVar[dict[str, Range]] = {"seed": (0, SEED_MAX)}

    def __init__(self, *, seed: int = 0, root: str | None = None) -> None:
        self.seed = int(seed)
        self.root = Path(root).expanduser() if root else cache_root()
        self.class_names = list(world.CLASS_NAMES)
        self.modalities = dict(world.MODALITY_WORDS)
        # the four confusable pairs (each class with its partner), for the knowledge regimes
        self.class_groups = [
            [c.name, world.CLASSES[c.partner].name] for i, c in enumerate(world.CLASSES) if i < c.partner
        ]

    @cached_property
    def folder(self) -> Path:
        """Where this world's PNG files and manifest live (keyed by generator version, seed and the
        pixel fingerprint)."""
        return self.root / f"v{world.GENERATOR_VERSION}-seed{self.seed}-{world.fingerprint(self.seed)}"

    @cached_property
    def descriptions(self) -> dict[str, dict[str, list[str]]]:
        return load_descriptions(DESCRIPTIONS, self.class_names)

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """The world's manifest (generated first if needed): ``splits[modality][split]`` -> [[file, label]]."""
        path = self.folder / MANIFEST
        if self.folder.is_symlink():  # a world planted in a shared cache: never read
            raise UsageError(
                f"{self.folder}: is a symbolic link; kmat reads phantom worlds only from its own folders; "
                "remove the link"
            )
        if not path.exists():
            generate(self.folder, self.seed)
        data = read_json(path, hint=f"delete {self.folder} to regenerate")
        if (
            not isinstance(data, dict)
            or data.get("format") != MANIFEST_FORMAT
            or data.get("class_names") != self.class_names
        ):
            raise UsageError(
                f"{path}: not a phantom world of this version; delete {self.folder} to regenerate"
            )
        return data

    def split(self, modality: str, split: str) -> list[Sample]:
        """The samples of one split, in generation order (absolute PNG paths and class indices)."""
        if modality not in SIZES or split not in SIZES[modality]:
            raise UsageError(
                f"phantom has no split {modality}/{split}; modalities hi, lo; splits train, val, test"
            )
        return [
            Sample(self.folder / rel, int(label)) for rel, label in self.manifest["splits"][modality][split]
        ]

    @staticmethod
    def corpus(
        seed: int, n: int, lo_fraction: float = 0.1, named_lo: float | None = None
    ) -> tuple[Any, list[str], Any, Any]:
        """The captioned pretraining corpus of the phantom backbone (see :func:`world.corpus`)."""
        return world.corpus(seed, n, lo_fraction, named_lo)


def generate(folder: Path, seed: int) -> None:
    """Draw every split of world ``seed`` as PNG files plus ``manifest.json`` into ``folder``, atomically.

    Everything is written into a fresh temporary sibling folder which is then renamed onto ``folder``; if
    another process finished first, its (identical) folder is kept and ours is removed. A reader sees
    either no folder or a complete one, because the manifest is written before the rename.
    """
    from PIL import Image

    make_cache_folder(folder.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError as exc:
        raise UsageError(
            f"{folder.parent}: cannot write the phantom world here ({exc.strerror}); set KMAT_CACHE (or "
            "task.root) to a writable folder"
        ) from exc
    try:
        splits: dict[str, dict[str, list[list[Any]]]] = {}
        for modality, sizes in SIZES.items():
            splits[modality] = {}
            for split, n in sizes.items():
                (tmp / modality / split).mkdir(parents=True)
                rows = []
                for index, label in enumerate(world.split_labels(n)):
                    img, _ = world.draw(seed, "task", modality, split, index, label)
                    rel = f"{modality}/{split}/{index:04d}.png"
                    Image.fromarray(img).save(tmp / rel, format="PNG")
                    rows.append([rel, label])
                splits[modality][split] = rows
        manifest = {
            "format": MANIFEST_FORMAT,
            "generator_version": world.GENERATOR_VERSION,
            "seed": seed,
            "image_size": world.IMAGE_SIZE,
            "class_names": list(world.CLASS_NAMES),
            "modalities": dict(world.MODALITY_WORDS),
            "splits": splits,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / MANIFEST).exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
