"""Verifiers: models (or measurements) that score candidate images on named aspects in [0, 10].

Any object that provides the protocol of :mod:`verifiers.protocol` is a verifier (other packs'
too); :class:`verifiers.base.Verifier` is this pack's base class for its own.
"""

from .base import Verifier
from .protocol import (
           SCORE_MAX,
           SCORE_MIN,
           SOCKET_TYPE,
           VerifierError,
           VerifierResult,
           check_verifier,
           validate_result,
)

__all__ = ["SCORE_MAX", "SCORE_MIN", "SOCKET_TYPE", "Verifier", "VerifierError", "VerifierResult", "check_verifier",
           "validate_result"]
