"""Custom tasks described by a YAML file: ``kmat train --task path/to/task.yaml``.

The file (paths in it are relative to the file's folder)::

    name: my-lesions                  # optional, default: the file's stem (used in run folder names)
    summary: one line for kmat list   # optional
    class_names: [benign nodule, malignant nodule]
    modalities: {hi: dermoscopy, lo: clinical photograph}
    descriptions: descriptions.json   # optional kmat.descriptions/v1 (or bare {class: [...]}) file
    data:                             # per modality, one of
      hi: images/hi                   #   a folder: ImageFolder tree <folder>/<split>/<class>/<images>
      lo: lo.csv                      #   a .csv: columns path, label (class name or index), split
                                      #   a .json: kmat split JSON (per-modality or with hi/lo keys)
    config:                           # optional run-config overrides (the "task YAML" layer)
      train: {shots: 8}               # backbone: biomedclip unless set here or by --backbone

``data`` may also be a single split JSON path holding both modalities. Split folder and CSV names
``valid``/``validation`` mean ``val``. No path read from a task file may leave its folder: ``data`` and
``descriptions`` are relative to the YAML's folder, paths inside CSV and JSON files relative to that file
(no absolute paths, no ``..``); symbolic links inside are followed, so data kept elsewhere is linked in
(as ``kmat data prepare`` links images). The ``config`` section may not set ``out``, ``descriptions`` or
``task``. Without ``descriptions`` every class gets the
one-line template ``"a <modality words> image of <class>."`` (enough for zero-shot and CoOp; write real
ones, or run ``kmat describe``, for K-MaT's anchor).

The registry resolves a task name ending in ``.yaml``/``.yml`` to :meth:`YamlTask.bind`, a subclass
whose ``path`` option defaults to that file and whose ``config`` is the file's ``config`` section.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from kmat.tasks.converters.files import IMAGE_SUFFIXES, walk_files
from kmat.tasks.converters.tables import read_csv, records
from kmat.tasks.splits import (
    check_class_names,
    modality_section,
    parse_entries,
    read_json,
    safe_relpath,
    split_name,
)

from kmat_cli.api import (
    MODALITIES,
    SPLITS,
    MissingFile,
    Sample,
    Task,
    UsageError,
    load_descriptions,
    printable,
    read_yaml,
    unprintable,
)

KEYS = ("name", "summary", "class_names", "modalities", "descriptions", "data", "config")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def load_spec(path: str | Path) -> dict[str, Any]:
    """Read and check a task YAML file; every problem is a one-line UsageError naming the file and key."""
    path = Path(path)
    spec = _read_spec(path)
    _check_classes(spec, path)
    name = spec.get("name", path.stem)
    if not isinstance(name, str) or not NAME.match(name):
        raise UsageError(f"{path}: 'name' must be letters, digits, '-', '_' or '.', got {name!r}")
    _check_paths(spec, path)
    return {**spec, "name": name, "config": _checked_config(spec, path)}


def _read_spec(path: Path) -> dict[str, Any]:
    """The task file as a mapping of known keys."""
    try:
        spec = read_yaml(path, what="task file")
    except MissingFile as exc:
        raise UsageError(f"{path}: task file not found") from exc
    if not isinstance(spec, dict):
        raise UsageError(f"{path}: a task file must be a mapping (class_names, modalities, data, ...)")
    for key in spec:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known: {', '.join(KEYS)}"
            raise UsageError(f"{path}: unknown key '{key}'{hint}")
    return spec


def _check_classes(spec: dict[str, Any], path: Path) -> None:
    """At least two distinct class names, and words for both modalities."""
    names = spec.get("class_names")
    if (
        not isinstance(names, list)
        or len(names) < 2
        or not all(isinstance(n, str) and n.strip() for n in names)
    ):
        raise UsageError(f"{path}: 'class_names' must list at least two class names")
    if len(set(names)) != len(names):
        raise UsageError(f"{path}: 'class_names' has duplicates")
    for name in names:
        if (char := unprintable(name)) is not None:
            raise UsageError(
                f"{path}: class name '{printable(name)}' holds the control character {char}; write plain text"
            )
    mods = spec.get("modalities")
    if not isinstance(mods, dict) or not all(
        isinstance(mods.get(m), str) and mods[m].strip() for m in MODALITIES
    ):
        raise UsageError(
            f"{path}: 'modalities' must give words for 'hi' and 'lo', e.g. {{hi: CT, lo: X-ray}}"
        )


def _check_paths(spec: dict[str, Any], path: Path) -> None:
    """``data`` (one split JSON, or a source per modality) and ``descriptions``: relative, inside the folder."""
    data = spec.get("data")
    if not isinstance(data, (str, dict)) or (isinstance(data, dict) and set(data) != set(MODALITIES)):
        raise UsageError(f"{path}: 'data' must be a split JSON path or a mapping with 'hi' and 'lo'")
    sources = {"data": data} if isinstance(data, str) else {f"data.{m}": v for m, v in data.items()}
    for key, value in sources.items():
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"{path}: '{key}' must be a folder, .csv or .json path")
        safe_relpath(value, f"{path}: {key}")
    if spec.get("descriptions") is not None:
        safe_relpath(spec["descriptions"], f"{path}: descriptions")


def _checked_config(spec: dict[str, Any], path: Path) -> dict[str, Any]:
    """The ``config`` section: run-config keys, without ``out``, ``descriptions`` or ``task``."""
    config = spec.get("config", {}) or {}
    if not isinstance(config, dict):
        raise UsageError(f"{path}: 'config' must be a mapping of run-config keys")
    for key, instead in (("out", "pass --out"), ("descriptions", "use the top-level 'descriptions' key")):
        if key in config:
            raise UsageError(f"{path}: 'config.{key}' may not be set by a task file; {instead}")
    if "task" in config:
        raise UsageError(f"{path}: 'config.task' may not be set by a task file (the file is the task)")
    return config


DEFAULT_BACKBONE = "biomedclip"  # real images need a real vision-language model, as the shipped real tasks


def with_backbone(config: Mapping[str, Any]) -> dict[str, Any]:
    """A task file's ``config`` section with ``backbone.name`` defaulting to :data:`DEFAULT_BACKBONE`."""
    backbone = config.get("backbone")
    section = {"name": backbone} if isinstance(backbone, str) else dict(backbone or {})
    return {**config, "backbone": {"name": DEFAULT_BACKBONE, **section}}


class YamlTask(Task):
    """A custom task from a YAML file: --task path/to/task.yaml (see examples/custom-task)."""

    name: ClassVar[str] = "yaml"
    spec_path: ClassVar[str] = ""
    config: ClassVar[dict[str, Any]] = with_backbone({})

    def __init__(self, *, path: str = "") -> None:
        path = path or self.spec_path
        if not path:
            raise UsageError("the yaml task needs a file: --task path/to/task.yaml (or set task.path)")
        self.path = Path(path).expanduser().resolve()
        spec = load_spec(self.path)
        self.base = self.path.parent
        self.name = spec["name"]
        self.class_names = [n.strip() for n in spec["class_names"]]
        self.modalities = {m: spec["modalities"][m].strip() for m in MODALITIES}
        self.summary = spec.get("summary", "")
        self._descriptions_file = spec.get("descriptions")
        self._data = spec["data"]
        self._descriptions: dict[str, dict[str, list[str]]] | None = None
        self._loaded: dict[str, dict[str, list[Sample]]] = {}

    @classmethod
    def bind(cls, path: str | Path) -> type[YamlTask]:
        """A subclass bound to one task file: its ``path`` option defaults to the file, its ``config``
        and ``name`` are the file's (what ``kmat_cli.config.build`` reads before instantiating)."""
        spec = load_spec(path)
        bound_path = str(Path(path).expanduser().resolve())

        def __init__(self: YamlTask, *, path: str = bound_path) -> None:
            YamlTask.__init__(self, path=path)

        doc = spec.get("summary") or f"Custom task '{spec['name']}' from {bound_path}."
        return type(
            f"YamlTask_{re.sub(r'[^0-9A-Za-z_]', '_', spec['name'])}",
            (cls,),
            {
                "__init__": __init__,
                "__doc__": doc,
                "__module__": cls.__module__,
                "name": spec["name"],
                "spec_path": bound_path,
                "config": with_backbone(spec["config"]),
            },
        )

    # ------------------------------------------------------------------------------------ descriptions
    @property
    def descriptions(self) -> dict[str, dict[str, list[str]]]:
        if self._descriptions is None:
            if self._descriptions_file:
                self._descriptions = load_descriptions(
                    self.base / str(self._descriptions_file), self.class_names, MODALITIES
                )
            else:
                self._descriptions = {
                    m: {c: [f"a {words} image of {c}."] for c in self.class_names}
                    for m, words in self.modalities.items()
                }
        return self._descriptions

    # -------------------------------------------------------------------------------------------- data
    def split(self, modality: str, split: str) -> list[Sample]:
        if modality not in MODALITIES:
            raise UsageError(f"unknown modality '{modality}'; known: {', '.join(MODALITIES)}")
        if split not in SPLITS:
            raise UsageError(f"unknown split '{split}'; known: {', '.join(SPLITS)}")
        if modality not in self._loaded:
            source = self._data if isinstance(self._data, str) else self._data[modality]
            if not isinstance(source, str) or not source.strip():
                raise UsageError(f"{self.path}: data.{modality} must be a folder, .csv or .json path")
            self._loaded[modality] = self._read(self.base / source, modality)
        return list(self._loaded[modality][split])

    def _read(self, source: Path, modality: str) -> dict[str, list[Sample]]:
        if source.is_dir():
            return self._image_folder(source)
        if not source.is_file():
            raise UsageError(f"{self.path}: data for '{modality}' not found at {source}")
        if source.suffix.lower() == ".csv":
            return self._csv(source)
        if source.suffix.lower() == ".json":
            raw = read_json(source)
            check_class_names(raw, self.class_names, source)
            section = modality_section(raw, modality, source)
            if section is None:
                raise UsageError(f"{source}: no '{modality}' section")
            out: dict[str, list[Sample]] = {s: [] for s in SPLITS}
            for key, entries in section.items():
                split = split_name(key)
                if split is not None:  # other keys (format, class_names, ...) are metadata
                    where = f"{source}: {modality}.{key}"
                    out[split] = parse_entries(entries, source.parent, self.class_names, where)
            return out
        raise UsageError(f"{source}: data must be a folder, a .csv or a .json split file")

    def _image_folder(self, root: Path) -> dict[str, list[Sample]]:
        """``<root>/<split>/<class>/...`` (any depth below the class folder)."""
        out: dict[str, list[Sample]] = {s: [] for s in SPLITS}
        index = {name: i for i, name in enumerate(self.class_names)}
        split_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not split_dirs:
            raise UsageError(f"{root}: empty data folder; expected <train|val|test>/<class>/<images> in it")
        for split_dir in split_dirs:
            split = split_name(split_dir.name)
            if split is None:
                raise UsageError(f"{split_dir}: not a split folder (train, val or test)")
            for class_dir in sorted(
                p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
            ):
                if class_dir.name not in index:
                    raise UsageError(f"{class_dir}: folder is not one of the classes {self.class_names}")
                out[split] += [
                    Sample(path=p, label=index[class_dir.name])
                    for p in walk_files(class_dir)
                    if p.suffix.lower() in IMAGE_SUFFIXES
                ]
        return out

    def _csv(self, path: Path) -> dict[str, list[Sample]]:
        """CSV rows ``path, label, split``; ``label`` is a class name or a class index."""
        rows = records(read_csv(path))
        if rows and not {"path", "label", "split"} <= set(rows[0]):
            raise UsageError(f"{path}: expected columns path, label, split")
        out: dict[str, list[Sample]] = {s: [] for s in SPLITS}
        index = {name: i for i, name in enumerate(self.class_names)}
        for n, row in enumerate(rows, start=2):
            where = f"{path}: row {n}"
            rel = safe_relpath(row["path"], where)
            label = _label(row["label"], index, where)
            split = split_name(row["split"])
            if split is None:
                raise UsageError(f"{where}: split '{row['split']}' is not train, val or test")
            file = path.parent / rel
            if not file.exists():
                raise UsageError(f"{where}: file {file} is missing")
            out[split].append(Sample(path=file, label=label))
        return out


def _label(value: str, index: Mapping[str, int], where: str) -> int:
    if value in index:
        return index[value]
    if value.isdigit() and int(value) < len(index):
        return int(value)
    raise UsageError(f"{where}: label '{value}' is not a class name or index of {list(index)}")
