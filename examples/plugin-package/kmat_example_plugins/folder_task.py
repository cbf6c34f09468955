"""A task made of two ImageFolder trees, one per modality: ``<root>/<split>/<class>/<image>``."""

from __future__ import annotations

from pathlib import Path

from kmat_cli.api import SPLITS, Sample, Task, UsageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


class FolderPairTask(Task):
    """Two image folders (train/val/test, one sub-folder per class) as the high- and low-end modality."""

    name = "folder-pair"

    def __init__(
        self,
        *,
        root_hi: str = "",
        root_lo: str = "",
        class_names: tuple[str, ...] = (),
        hi_words: str = "high-end",
        lo_words: str = "low-end",
    ) -> None:
        self.roots = {"hi": Path(root_hi), "lo": Path(root_lo)}
        self.modalities = {"hi": hi_words, "lo": lo_words}
        self.class_names = list(class_names) or self._classes_from(self.roots["hi"])

    @staticmethod
    def _classes_from(root: Path) -> list[str]:
        train = root / "train"
        if not train.is_dir():
            raise UsageError(f"{train}: no such folder; set task.root_hi to an ImageFolder tree")
        return sorted(p.name for p in train.iterdir() if p.is_dir())

    @property
    def descriptions(self) -> dict[str, dict[str, list[str]]]:
        return {
            m: {c: [f"a {words} image of {c}."] for c in self.class_names}
            for m, words in self.modalities.items()
        }

    def split(self, modality: str, split: str) -> list[Sample]:
        if split not in SPLITS:
            raise UsageError(f"unknown split '{split}'; known: {', '.join(SPLITS)}")
        samples = []
        for label, name in enumerate(self.class_names):
            folder = self.roots[modality] / split / name
            if not folder.is_dir():
                raise UsageError(f"{folder}: missing class folder for '{name}'")
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            samples += [Sample(path=p, label=label) for p in files]
        return samples
