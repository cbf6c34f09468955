"""The contracts of kmat's plugin kinds: the base classes of transports, backbones and tasks.

Plugins import them through :mod:`kmat_cli.api` (their only door into kmat); core modules that a plugin
contract is built from (methods, prompts) import them from here, so that :mod:`kmat_cli.api` can export
those modules in turn without an import cycle. Nothing here imports torch or another kmat module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # keep the import cheap: torch is imported by the plugins that need it
    import torch

MODALITIES = ("hi", "lo")  # the two modalities of every task: high-end and low-end
SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------------------------------- transports
class Transport:
    """Base of transport losses between the K high-end and K low-end class embeddings.

    ``T(X_hi, X_lo)`` returns a differentiable scalar (gradient to ``X_lo`` only; ``X_hi`` is treated as
    fixed); ``T.plan(X_hi, X_lo)`` returns the (K, K) coupling whose rows sum to ``a`` (1/K by default).
    Both accept optional marginals ``a`` and ``b``. Subclasses state the problem they solve in their
    docstring.
    """

    def __call__(
        self,
        X_hi: torch.Tensor,
        X_lo: torch.Tensor,
        a: torch.Tensor | None = None,
        b: torch.Tensor | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def plan(
        self,
        X_hi: torch.Tensor,
        X_lo: torch.Tensor,
        a: torch.Tensor | None = None,
        b: torch.Tensor | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def solver_state(self) -> dict[str, torch.Tensor]:
        """What the solver carries from one call to the next (e.g. a warm start), as named tensors; ``{}``
        for a stateless transport. Training checkpoints save it, so that a resumed run continues exactly."""
        return {}

    def load_solver_state(self, state: dict[str, torch.Tensor]) -> None:
        """Continue from what :meth:`solver_state` returned (a stateless transport ignores it)."""


# ---------------------------------------------------------------------------------------------- backbones
class Backbone:
    """Base of frozen vision-language backbones. All embeddings returned are L2-normalised.

    Attributes every backbone sets:
      ``id``: a stable identity string (hub id, model+tag, or a weights hash): part of feature-cache keys
      and of exported prompt files; ``embed_dim`` (D); ``token_width`` (W, width of token embeddings);
      ``logit_scale`` (float, exp of the model's learned log-scale, 100 if it has none); ``preprocess``
      (PIL image -> (3, H, W) tensor); ``preprocess_spec`` (JSON-able dict: image_size, mean, std,
      resize, interpolation); ``model``, ``tokenizer``; ``device``.
    Built with ``vision_only=True`` a backbone must not construct its text tower (predict uses this).
    """

    id: str
    embed_dim: int
    token_width: int
    logit_scale: float
    preprocess: Callable[[Any], torch.Tensor]
    preprocess_spec: dict[str, Any]
    model: Any
    tokenizer: Any

    def to(self, device: str | torch.device) -> Backbone:
        raise NotImplementedError

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) preprocessed pixels -> (N, D) normalised image embeddings (no grad)."""
        raise NotImplementedError

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (N, D) normalised text embeddings, the model's own text path."""
        raise NotImplementedError

    def encode_prompts(self, ctx: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """Learnable context ``ctx`` (P, L, W) placed right after the start token, then the tokens of
        ``texts[p]``, through the frozen text tower -> (P, D) normalised. ``L = 0`` equals
        :meth:`encode_text`. Differentiable w.r.t. ``ctx``; run only up to the longest real length."""
        raise NotImplementedError

    def token_embeddings(self, text: str) -> torch.Tensor:
        """The frozen token embeddings (n, W) of ``text`` without start/end tokens (for context init)."""
        raise NotImplementedError


# -------------------------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class Sample:
    """One labelled image of a split: its path and its class index into ``Task.class_names``."""

    path: Path
    label: int


class Task:
    """Base of tasks: a pair of modalities over one class list, with data splits and descriptions.

    ``name``; ``class_names`` (list of K names, the words used in prompts); ``modalities``
    (``{"hi": words, "lo": words}``, e.g. ``{"hi": "dermoscopy", "lo": "clinical photograph"}``);
    ``descriptions`` (``[modality][class] -> list[str]``); ``split(modality, split)`` -> list of
    :class:`Sample`. ``config`` holds run-config overrides the task recommends (the "task YAML" layer).
    ``class_groups`` (optional): groups of class names that belong together (e.g. confusable pairs), used
    by the ``pooled`` and ``partial`` knowledge regimes (:mod:`kmat_cli.knowledge`); None: not declared.
    """

    name: str
    class_names: list[str]
    modalities: dict[str, str]
    config: ClassVar[dict[str, Any]] = {}
    class_groups: list[list[str]] | None = None

    @property
    def descriptions(self) -> dict[str, dict[str, list[str]]]:
        raise NotImplementedError

    def split(self, modality: str, split: str) -> list[Sample]:
        raise NotImplementedError
