"""Base of the built-in real tasks: data prepared by ``kmat data prepare`` under a data root.

The root (task option ``root``, config key ``task.root``) defaults to ``$KMAT_DATA/<task>``, else
``<user data dir>/kmat/<task>`` (e.g. ``~/.local/share/kmat/chest``). It holds ``splits.json`` (or
``splits-hi.json`` / ``splits-lo.json``, see :mod:`kmat.tasks.splits`) and the image files the splits list.
Class names, modality words and descriptions need no data, so ``kmat describe`` or ``kmat list`` work
before any download; the data are read on the first :meth:`split` call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from kmat.tasks.splits import (
    SPLITS_FILE,
    check_class_names,
    modality_section,
    parse_entries,
    read_json,
    split_entries,
)

from kmat_cli.api import MODALITIES, Sample, Task, UsageError, load_descriptions

if TYPE_CHECKING:
    from kmat.tasks.converters.layout import Collected

DESCRIPTIONS_DIR = Path(__file__).with_name("descriptions")


def data_home() -> Path:
    """Where prepared task data live by default: ``$KMAT_DATA``, else ``<user data dir>/kmat``."""
    env = os.environ.get("KMAT_DATA")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("kmat"))


class PreparedTask(Task):
    """A task whose splits are read from a prepared data root (see the module docstring).

    Subclasses set ``name``, ``class_names``, ``modalities``, ``datasets`` (the public datasets behind
    ``hi`` and ``lo``, for messages) and implement :meth:`convert` (the ``kmat data prepare`` step).
    """

    name: ClassVar[str] = ""
    class_names: ClassVar[list[str]] = []
    modalities: ClassVar[dict[str, str]] = {}
    datasets: ClassVar[dict[str, str]] = {}
    descriptions_name: ClassVar[str] = ""  # file stem in tasks/descriptions/ (default: the task name)
    # Real images need a real vision-language model: the recommended run-config layer.
    config: ClassVar[dict[str, Any]] = {"backbone": {"name": "biomedclip"}}

    def __init__(self, *, root: str = "") -> None:
        self.root = Path(root).expanduser() if root else self.default_root()
        self._descriptions: dict[str, dict[str, list[str]]] | None = None
        self._sections: dict[str, Any] = {}

    @classmethod
    def default_root(cls) -> Path:
        """``$KMAT_DATA/<task>`` or ``<user data dir>/kmat/<task>``."""
        return data_home() / cls.name

    @classmethod
    def descriptions_file(cls) -> Path:
        """The task's shipped descriptions JSON (``tasks/descriptions/<descriptions_name or task>.json``)."""
        return DESCRIPTIONS_DIR / f"{cls.descriptions_name or cls.name}.json"

    @property
    def descriptions(self) -> dict[str, dict[str, list[str]]]:
        if self._descriptions is None:
            self._descriptions = load_descriptions(self.descriptions_file(), self.class_names, MODALITIES)
        return self._descriptions

    # ------------------------------------------------------------------------------------------ data
    @classmethod
    def prepare_hint(cls) -> str:
        """The command that prepares this task's data (quoted in error messages)."""
        lo = " --source-lo DIR" if cls.datasets.get("lo") != cls.datasets.get("hi") else ""
        return f"kmat data prepare {cls.name} --source DIR{lo}"

    def _missing(self, what: str) -> UsageError:
        return UsageError(
            f"{self.name}: no prepared data in {self.root} ({what}); run `{self.prepare_hint()}` "
            f"(see docs/data.md) or set task.root"
        )

    def _section(self, modality: str) -> tuple[Path, Any]:
        """The split file holding ``modality`` and its ``{split: entries}`` section (cached)."""
        if modality not in MODALITIES:
            raise UsageError(f"unknown modality '{modality}'; known: {', '.join(MODALITIES)}")
        if modality not in self._sections:
            combined = self.root / SPLITS_FILE
            single = self.root / f"splits-{modality}.json"
            section = None
            path = combined
            if combined.is_file():
                raw = read_json(combined)
                check_class_names(raw, self.class_names, combined)
                section = modality_section(raw, modality, combined)
            if section is None and single.is_file():
                path = single
                raw = read_json(single)
                check_class_names(raw, self.class_names, single)
                section = modality_section(raw, modality, single)
            if section is None:
                if not self.root.is_dir():
                    raise self._missing("folder not found")
                raise self._missing(f"no {SPLITS_FILE} with '{modality}' splits")
            self._sections[modality] = (path, section)
        return self._sections[modality]

    def split(self, modality: str, split: str) -> list[Sample]:
        """The samples of ``split`` for ``modality``; every entry validated, every file checked."""
        path, section = self._section(modality)
        entries = split_entries(section, split, path, modality)
        return parse_entries(entries, self.root, self.class_names, f"{path}: {modality}.{split}")

    # ------------------------------------------------------------------------------------- prepare
    @classmethod
    def convert(
        cls, source: Path, source_lo: Path | None, *, seed: int, exclude: Path, log: Callable[[str], None]
    ) -> Collected:
        """Read the public dataset(s) and return a :class:`kmat.tasks.converters.layout.Collected` of split
        items; ``exclude`` (the data root being written) is never scanned."""
        raise NotImplementedError

    @classmethod
    def prepare(
        cls,
        source: str | Path,
        *,
        source_lo: str | Path | None = None,
        out: str | Path | None = None,
        seed: int = 0,
        copy: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Convert the downloaded public dataset(s) into ``out`` (default :meth:`default_root`).

        ``source`` is the high-end dataset (for single-dataset tasks both modalities), ``source_lo`` the
        low-end one where the task has two. Images are symlinked (``copy=True``: copied), or converted
        to PNG where the original cannot be read as an 8-bit image (DICOM, 16-bit TIFF). Returns the
        report written into ``splits.json``: ``counts[modality][split][class]``, ``skipped`` reasons.
        """
        from kmat.tasks.converters.layout import write_prepared

        log = log or (lambda _msg: None)
        source = Path(source).expanduser()
        if not source.is_dir():
            raise UsageError(f"--source {source}: no such folder (the downloaded {cls.datasets['hi']})")
        two = cls.datasets.get("lo") != cls.datasets.get("hi")
        if two and source_lo is None:
            raise UsageError(
                f"{cls.name} combines two datasets: pass --source (the {cls.datasets['hi']} folder) and "
                f"--source-lo (the {cls.datasets['lo']} folder)"
            )
        if not two and source_lo is not None:
            raise UsageError(f"{cls.name} reads one dataset ({cls.datasets['hi']}); drop --source-lo")
        lo = Path(source_lo).expanduser() if source_lo is not None else None
        if lo is not None and not lo.is_dir():
            raise UsageError(f"--source-lo {lo}: no such folder (the downloaded {cls.datasets['lo']})")
        root = Path(out).expanduser() if out else cls.default_root()
        collected = cls.convert(source, lo, seed=seed, exclude=root, log=log)
        return write_prepared(
            root,
            task=cls.name,
            class_names=cls.class_names,
            collected=collected,
            seed=seed,
            copy=copy,
            sources={"hi": str(source.resolve()), "lo": str((lo or source).resolve())},
            datasets=dict(cls.datasets),
            log=log,
        )
