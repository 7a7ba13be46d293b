"""The pack's own verifier base class (it satisfies the duck-typed protocol of verifiers/protocol.py).

A verifier scores a batch of candidate images (ComfyUI IMAGE layout: float [B, H, W, 3] in 0..1)
against the prompt text and an optional reference image, and returns one or more named aspect
scores per image, each normalised to [0, 10], plus the raw values the model produced. Results are
validated by :func:`verifiers.protocol.validate_result`, the one check every verifier's results go
through (this pack's and other packs'), so no verifier can hand the search a NaN, an inf or an
out-of-range value.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from .protocol import SCORE_MAX, SCORE_MIN, VerifierError, VerifierResult, check_inputs, validate_result

__all__ = ["SCORE_MAX", "SCORE_MIN", "Verifier", "VerifierError", "VerifierResult", "linear_to_score"]


class Verifier(ABC):
    """Scores images on named aspects.

    Subclasses set ``kind`` (the verifier family, e.g. "clip_score"), ``aspects`` (the names of the
    scores it returns, e.g. ("clip_score",) or ("prompt_adherence", "realism", ...)) and
    ``identity`` (kind plus whatever makes its scores differ: weights file, architecture, rubric;
    set ``self._identity`` or override the property), which keys the per-candidate score cache.
    ``uses_reference`` says whether a reference image changes its scores; ``requires_reference``
    whether it cannot score without one. ``managed_models`` lists the models it runs (objects with a
    ``.patcher``: the ComfyUI ModelPatchers loaded before scoring), empty for measurements.
    """

    kind: str
    aspects: tuple[str, ...]
    uses_reference: bool = False
    requires_reference: bool = False
    managed_models: tuple = ()
    _identity: str

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def patchers(self) -> list:
        return [m.patcher for m in self.managed_models]

    @abstractmethod
    def _score(self, images: torch.Tensor, prompt: str, reference: torch.Tensor | None) -> VerifierResult:
        """Score one batch. images: [B, H, W, 3] float in 0..1; reference: [1, H', W', 3] or None."""

    def score(self, images: torch.Tensor, prompt: str, reference: torch.Tensor | None = None) -> VerifierResult:
        """Check the inputs, score with ``_score`` and validate the result (raises VerifierError)."""
        check_inputs(self.identity, images, reference, self.requires_reference)
        result = self._score(images, prompt, reference if self.uses_reference else None)
        return validate_result(result, self.identity, tuple(self.aspects), images.shape[0])


def linear_to_score(raw: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Map raw values linearly so that ``low`` -> 0 and ``high`` -> 10, clamped to [0, 10]."""
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"bad mapping range [{low}, {high}]")
    return ((raw.double() - low) / (high - low) * SCORE_MAX).clamp(SCORE_MIN, SCORE_MAX)
