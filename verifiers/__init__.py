"""Verifiers: models (or measurements) that score candidate images on named aspects in [0, 10]."""

from .base import SCORE_MAX, SCORE_MIN, Verifier, VerifierError, VerifierResult

__all__ = ["SCORE_MAX", "SCORE_MIN", "Verifier", "VerifierError", "VerifierResult"]
