"""The paper's four real tasks: skin1, skin2, chest, breast (data from ``kmat data prepare``).

Each task names its classes (the words used in prompts), its two modalities and the public datasets
behind them; its descriptions ship in ``tasks/descriptions/<task>.json`` (hand-written, replaceable by
``kmat describe`` output through ``--descriptions``; skin1 and skin2 share ``skin.json``). ``codes`` maps each dataset label group to a
class name, in class order; converters live in :mod:`tasks.converters` and are imported only when
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

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from tasks.prepared import PreparedTask

if TYPE_CHECKING:  # converters load only when `kmat data prepare` runs
    from tasks.converters.layout import Collected


class _RealTask(PreparedTask):
    """A paper task: ``codes`` (dataset label group -> class name, in class order) and ``table1``
    (train/val/test sizes per modality) define it; ``convert`` calls its dataset converters."""

    codes: ClassVar[dict[str, str]] = {}
    table1: ClassVar[dict[str, tuple[int, int, int]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.class_names = list(cls.codes.values())


class Skin1(_RealTask):
    """Skin lesions, MRA-MIDAS: dermoscopy -> 15 cm clinical photograph (6 classes)."""

    name = "skin1"
    codes = {
        "AK": "actinic keratosis",
        "BCC": "basal cell carcinoma",
        "MEL": "melanoma",
        "NEV": "melanocytic nevus",
        "SCC": "squamous cell carcinoma",
        "SK": "seborrheic keratosis",
    }
    modalities = {"hi": "dermoscopy", "lo": "clinical photograph"}
    datasets = {"hi": "MRA-MIDAS", "lo": "MRA-MIDAS"}
    descriptions_name = "skin"
    table1 = {"hi": (513, 91, 135), "lo": (501, 89, 132)}

    @classmethod
    def convert(
        cls, source: Path, source_lo: Path | None, *, seed: int, exclude: Path, log: Callable[[str], None]
    ) -> Collected:
        from tasks.converters import midas

        return midas.collect(
            source, names=cls.codes, ratio=cls.table1["hi"], seed=seed, exclude=exclude, log=log
        )


class Skin2(_RealTask):
    """Skin lesions, Derm7pt: dermoscopy -> clinical photograph (5 classes, official splits)."""

    name = "skin2"
    codes = {
        "BCC": "basal cell carcinoma",
        "NEV": "melanocytic nevus",
        "MEL": "melanoma",
        "MISC": "other benign lesion",
        "SK": "seborrheic keratosis",
    }
    modalities = {"hi": "dermoscopy", "lo": "clinical photograph"}
    datasets = {"hi": "Derm7pt", "lo": "Derm7pt"}
    descriptions_name = "skin"
    table1 = {"hi": (413, 203, 395), "lo": (413, 203, 395)}

    @classmethod
    def convert(
        cls, source: Path, source_lo: Path | None, *, seed: int, exclude: Path, log: Callable[[str], None]
    ) -> Collected:
        from tasks.converters import derm7pt

        return derm7pt.collect(source, names=cls.codes, exclude=exclude, log=log)


class Chest(_RealTask):
    """Chest, CC-CCII CT -> Kaggle chest X-ray: COVID-19 pneumonia, common pneumonia, normal lungs."""

    name = "chest"
    codes = {"NCP": "COVID-19 pneumonia", "CP": "common pneumonia", "Normal": "normal lungs"}
    modalities = {"hi": "chest CT", "lo": "chest X-ray"}
    datasets = {"hi": "CC-CCII", "lo": "Chest X-ray (COVID-19 & Pneumonia)"}
    table1 = {"hi": (10670, 3538, 1678), "lo": (4595, 923, 914)}

    @classmethod
    def convert(
        cls, source: Path, source_lo: Path | None, *, seed: int, exclude: Path, log: Callable[[str], None]
    ) -> Collected:
        from tasks.converters import ccccii, chestxray
        from tasks.converters.layout import merge

        xray = {"COVID19": cls.codes["NCP"], "PNEUMONIA": cls.codes["CP"], "NORMAL": cls.codes["Normal"]}
        assert source_lo is not None
        return merge(
            ccccii.collect(
                source, names=cls.codes, sizes=cls.table1["hi"], seed=seed, exclude=exclude, log=log
            ),
            chestxray.collect(
                source_lo, names=xray, ratio=cls.table1["lo"], seed=seed, exclude=exclude, log=log
            ),
        )


class Breast(_RealTask):
    """Breast, DMID mammography -> BUSI ultrasound: benign, malignant, normal."""

    name = "breast"
    codes = {
        "benign": "benign breast lesion",
        "malignant": "malignant breast lesion",
        "normal": "normal breast tissue",
    }
    modalities = {"hi": "mammography", "lo": "breast ultrasound"}
    datasets = {"hi": "DMID", "lo": "BUSI"}
    table1 = {"hi": (356, 76, 78), "lo": (389, 155, 236)}

    @classmethod
    def convert(
        cls, source: Path, source_lo: Path | None, *, seed: int, exclude: Path, log: Callable[[str], None]
    ) -> Collected:
        from tasks.converters import busi, dmid
        from tasks.converters.layout import merge

        hi = {"N": cls.codes["normal"], "B": cls.codes["benign"], "M": cls.codes["malignant"]}
        assert source_lo is not None
        return merge(
            dmid.collect(source, names=hi, ratio=cls.table1["hi"], seed=seed, exclude=exclude, log=log),
            busi.collect(
                source_lo, names=cls.codes, ratio=cls.table1["lo"], seed=seed, exclude=exclude, log=log
            ),
        )
