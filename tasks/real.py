"""The paper's four real tasks: skin1, skin2, chest, breast (data from ``kmat data prepare``).

Each task names its classes (the words used in prompts), its two modalities and the public datasets
behind them; its descriptions ship in ``tasks/descriptions/<task>.json`` (hand-written, replaceable by
``kmat describe`` output through ``--descriptions``; skin1 and skin2 share ``skin.json``). ``codes`` maps each dataset label group to a
class name, in class order; converters live in :mod:`kmat.tasks.converters` and are imported only when
``kmat data prepare`` runs. Split sizes follow Table 1 of the K-MaT paper (train/val/test):

======  ==================================  ====================================
task    high-end                            low-end
======  ==================================  ====================================
skin1   MRA-MIDAS dermoscopy 513/91/135     MRA-MIDAS 15 cm photo 501/89/132
skin2   Derm7pt dermoscopy 413/203/395      Derm7pt clinical 413/203/395
chest   CC-CCII CT 10670/3538/1678          Kaggle chest X-ray 4595/923/914
breast  DMID mammography 356/76/78          BUSI ultrasound 389/155/236
======  ==================================  ====================================
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from kmat.tasks.prepared import PreparedTask

if TYPE_CHECKING:  # converters load only when `kmat data prepare` runs
    from kmat.tasks.converters.layout import Collected


@dataclass(frozen=True)
class Source:
    """One dataset converter of a task: ``kmat.tasks.converters.<converter>.collect`` reads the folder given
    for modality ``modality`` (``hi``: ``--source``, ``lo``: ``--source-lo``). ``labels`` maps the
    dataset's labels to keys of the task's ``codes`` (default: the codes themselves). The converter
    splits by ``table1[modality]`` (as a ratio, or as slice counts where it samples), unless the dataset
    has ``official_splits``."""

    converter: str
    modality: str = "hi"
    labels: Mapping[str, str] | None = None
    official_splits: bool = False

    def collect(self, task: type[_RealTask], folder: Path | None, **common: Any) -> Collected:
        """The converter's items for ``task`` from ``folder``; ``common``: ``seed``, ``exclude``, ``log``."""
        from kmat.tasks.converters.layout import Request

        assert folder is not None  # PreparedTask.prepare asks for --source-lo where a task has two sources
        codes = task.codes
        names = codes if self.labels is None else {label: codes[key] for label, key in self.labels.items()}
        counts = () if self.official_splits else task.table1[self.modality]
        converter = importlib.import_module(f"kmat.tasks.converters.{self.converter}")
        flag = "--source" if self.modality == "hi" else "--source-lo"
        return converter.collect(Request(folder, names, counts, **common, flag=flag))


class _RealTask(PreparedTask):
    """A paper task: ``codes`` (dataset label group -> class name, in class order), ``table1``
    (train/val/test sizes per modality) and ``sources`` (its dataset converters) define it."""

    codes: ClassVar[dict[str, str]] = {}
    table1: ClassVar[dict[str, tuple[int, int, int]]] = {}
    sources: ClassVar[tuple[Source, ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.class_names = list(cls.codes.values())

    @classmethod
    def convert(
        cls, source: Path, source_lo: Path | None, *, seed: int, exclude: Path, log: Callable[[str], None]
    ) -> Collected:
        """Every source's items, merged (one source: its items as they are)."""
        from kmat.tasks.converters.layout import merge

        folders = {"hi": source, "lo": source_lo}
        parts = [
            s.collect(cls, folders[s.modality], seed=seed, exclude=exclude, log=log) for s in cls.sources
        ]
        return parts[0] if len(parts) == 1 else merge(*parts)


SKIN = {  # MRA-MIDAS and Derm7pt label codes -> class names (shared by skin1, skin2 and skin.json)
    "AK": "actinic keratosis",
    "BCC": "basal cell carcinoma",
    "MEL": "melanoma",
    "MISC": "other benign lesion",
    "NEV": "melanocytic nevus",
    "SCC": "squamous cell carcinoma",
    "SK": "seborrheic keratosis",
}


class _Skin(_RealTask):
    """A skin task: dermoscopy -> clinical photograph, classes named by :data:`SKIN`, descriptions in
    ``skin.json``."""

    modalities: ClassVar[dict[str, str]] = {"hi": "dermoscopy", "lo": "clinical photograph"}
    descriptions_name = "skin"


class Skin1(_Skin):
    """Skin lesions, MRA-MIDAS: dermoscopy -> 15 cm clinical photograph (6 classes)."""

    name = "skin1"
    codes: ClassVar[dict[str, str]] = {code: SKIN[code] for code in ("AK", "BCC", "MEL", "NEV", "SCC", "SK")}
    datasets: ClassVar[dict[str, str]] = {"hi": "MRA-MIDAS", "lo": "MRA-MIDAS"}
    table1: ClassVar[dict[str, tuple[int, int, int]]] = {"hi": (513, 91, 135), "lo": (501, 89, 132)}
    sources = (Source("midas"),)


class Skin2(_Skin):
    """Skin lesions, Derm7pt: dermoscopy -> clinical photograph (5 classes, official splits)."""

    name = "skin2"
    codes: ClassVar[dict[str, str]] = {code: SKIN[code] for code in ("BCC", "NEV", "MEL", "MISC", "SK")}
    datasets: ClassVar[dict[str, str]] = {"hi": "Derm7pt", "lo": "Derm7pt"}
    table1: ClassVar[dict[str, tuple[int, int, int]]] = {"hi": (413, 203, 395), "lo": (413, 203, 395)}
    sources = (Source("derm7pt", official_splits=True),)


class Chest(_RealTask):
    """Chest, CC-CCII CT -> Kaggle chest X-ray: COVID-19 pneumonia, common pneumonia, normal lungs."""

    name = "chest"
    codes: ClassVar[dict[str, str]] = {
        "NCP": "COVID-19 pneumonia",
        "CP": "common pneumonia",
        "Normal": "normal lungs",
    }
    modalities: ClassVar[dict[str, str]] = {"hi": "chest CT", "lo": "chest X-ray"}
    datasets: ClassVar[dict[str, str]] = {"hi": "CC-CCII", "lo": "Chest X-ray (COVID-19 & Pneumonia)"}
    table1: ClassVar[dict[str, tuple[int, int, int]]] = {"hi": (10670, 3538, 1678), "lo": (4595, 923, 914)}
    sources = (
        Source("ccccii"),
        Source("chestxray", "lo", labels={"COVID19": "NCP", "PNEUMONIA": "CP", "NORMAL": "Normal"}),
    )


class Breast(_RealTask):
    """Breast, DMID mammography -> BUSI ultrasound: benign, malignant, normal."""

    name = "breast"
    codes: ClassVar[dict[str, str]] = {
        "benign": "benign breast lesion",
        "malignant": "malignant breast lesion",
        "normal": "normal breast tissue",
    }
    modalities: ClassVar[dict[str, str]] = {"hi": "mammography", "lo": "breast ultrasound"}
    datasets: ClassVar[dict[str, str]] = {"hi": "DMID", "lo": "BUSI"}
    table1: ClassVar[dict[str, tuple[int, int, int]]] = {"hi": (356, 76, 78), "lo": (389, 155, 236)}
    sources = (
        Source("dmid", labels={"N": "normal", "B": "benign", "M": "malignant"}),
        Source("busi", "lo"),
    )
