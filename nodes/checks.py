"""validate_inputs helpers: run checks that raise, and hand ComfyUI the first message (it shows
that text to the user and runs nothing). One place, so every node reports errors the same way."""

from __future__ import annotations

from ..search.pool import SearchError
from ..verifiers.base import VerifierError

CHECK_ERRORS = (SearchError, VerifierError)


def message(check, *args) -> str | None:
    """The error message of ``check(*args)``, or None when it passes."""
    try:
        check(*args)
    except CHECK_ERRORS as e:
        return str(e)
    return None


def first_error(*checks) -> bool | str:
    """``checks`` are ``(function, *args)`` tuples (None entries are skipped). True when every check
    passes, else the first message: the return value validate_inputs expects."""
    for check in checks:
        if check is not None:
            msg = message(*check)
            if msg:
                return msg
    return True
