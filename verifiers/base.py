"""The one interface every verifier implements.

A verifier scores a batch of candidate images (ComfyUI IMAGE layout: float [B, H, W, 3] in 0..1)
against the prompt text and an optional reference image, and returns one or more named aspect
scores per image, each normalised to [0, 10], plus the raw values the model produced. Scores are
validated here, once, so no verifier can hand the search a NaN, an inf or an out-of-range value.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

SCORE_MIN = 0.0
SCORE_MAX = 10.0


class VerifierError(RuntimeError):
    """A verifier could not produce valid scores. The message says what to change."""


@dataclass(frozen=True)
class VerifierResult:
    """Per-image scores of one batch.

    scores: aspect name -> float64 tensor [B] in [0, 10], on the CPU.
    raw:    aspect name -> float64 tensor [B], the model's own value before mapping (documented
            per verifier), on the CPU.
    """

    scores: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor]

    def validated(self, verifier: Verifier, batch: int) -> VerifierResult:
        if set(self.scores) != set(verifier.aspects):
            raise VerifierError(
                f"{verifier.identity}: returned aspects {sorted(self.scores)}, declared {list(verifier.aspects)}"
            )
        for aspect, values in self.scores.items():
            values = values.detach().to("cpu", torch.float64)
            if values.shape != (batch,):
                raise VerifierError(
                    f"{verifier.identity}: aspect '{aspect}' has shape {tuple(values.shape)}, expected ({batch},)"
                )
            bad = ~torch.isfinite(values)
            if bad.any():
                raise VerifierError(
                    f"{verifier.identity}: aspect '{aspect}' is not finite for image(s) "
                    f"{bad.nonzero().flatten().tolist()} (values {values.tolist()}); the verifier model "
                    "or its weights are broken, or the image is degenerate"
                )
            if (values < SCORE_MIN - 1e-9).any() or (values > SCORE_MAX + 1e-9).any():
                raise VerifierError(
                    f"{verifier.identity}: aspect '{aspect}' left [0, 10]: {values.tolist()}"
                )
        return VerifierResult(
            scores={k: v.detach().to("cpu", torch.float64) for k, v in self.scores.items()},
            raw={k: v.detach().to("cpu", torch.float64) for k, v in self.raw.items()},
        )


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
        if images.ndim != 4 or images.shape[-1] != 3:
            raise VerifierError(f"{self.identity}: expected IMAGE [B, H, W, 3], got {tuple(images.shape)}")
        if self.requires_reference and reference is None:
            raise VerifierError(
                f"{self.identity}: needs a reference image (the edit input or identity source); "
                "connect one to the node's 'reference' input"
            )
        if reference is not None and (reference.ndim != 4 or reference.shape[0] != 1):
            raise VerifierError(
                f"{self.identity}: the reference must be one image [1, H, W, 3], got {tuple(reference.shape)}"
            )
        return self._score(images, prompt, reference if self.uses_reference else None).validated(
            self, images.shape[0]
        )


def linear_to_score(raw: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Map raw values linearly so that ``low`` -> 0 and ``high`` -> 10, clamped to [0, 10]."""
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise ValueError(f"bad mapping range [{low}, {high}]")
    return ((raw.double() - low) / (high - low) * SCORE_MAX).clamp(SCORE_MIN, SCORE_MAX)
