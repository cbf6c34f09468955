"""The packages kmat installs: ``kmat``, ``kmat_cli``, and the plugin folders ``backbones/``, ``transports/``
and ``tasks/`` as ``kmat.backbones``, ``kmat.transports`` and ``kmat.tasks``, so that kmat takes no generic
top-level import name. Found from the tree, so a new subpackage or data folder is never left out of the wheel;
everything else about the distribution is declared in pyproject.toml."""

from setuptools import find_namespace_packages, setup

PLUGINS = ("backbones", "transports", "tasks")
SKIP = ["*__pycache__*"]


def packages() -> list[str]:
    """Every package and data folder of kmat, under its installed name."""
    own = find_namespace_packages(include=["kmat", "kmat.*", "kmat_cli", "kmat_cli.*"], exclude=SKIP)
    plugins = find_namespace_packages(include=[*PLUGINS, *(f"{p}.*" for p in PLUGINS)], exclude=SKIP)
    return own + [f"kmat.{name}" for name in plugins]


setup(packages=packages(), package_dir={f"kmat.{p}": p for p in PLUGINS})
