"""The verifier protocol: what any object must provide for EACPS to score candidates with it.

It is duck-typed so that another node pack can offer verifiers without importing this pack
(inside ComfyUI it cannot: ComfyUI imports a pack under its folder path, so ``import eacps`` fails
elsewhere). A verifier is any object with

- ``kind: str``: the verifier family, e.g. ``"clip_score"``; letters, digits, ``_``, ``-``.
- ``identity: str``: non-empty; changes whenever the scores would (weights file, architecture,
  options); keys the per-candidate score cache. Never put an API key in it.
- ``aspects: tuple[str, ...]``: the score names it returns, non-empty and unique; letters, digits,
  ``_``, ``-`` (the weights text names them: ``realism=4.0``).
- ``uses_reference: bool``: whether a reference image changes its scores (when False it is given
  ``None`` and a changed reference does not re-score).
- ``requires_reference: bool``: whether it cannot score without one (implies ``uses_reference``).
- ``patchers: list``: the ComfyUI ``ModelPatcher`` objects EACPS loads (``load_models_gpu``) before
  each scoring call; empty for measurements.
- ``score(images, prompt, reference) -> result``: ``images`` float [B, H, W, 3] in 0..1 on the CPU,
  ``prompt`` str, ``reference`` float [1, H', W', 3] or None. ``result.scores`` and ``result.raw``
  are mappings aspect -> tensor [B] (one value per image, batch order kept): ``scores`` on
  [0, 10], finite; ``raw`` the model's own value before mapping (any finite or non-finite float).

The node socket type is ``EACPS_VERIFIER`` (:data:`SOCKET_TYPE`): a loader in another pack
declares that output type (V1 ``RETURN_TYPES = ("EACPS_VERIFIER",)`` or V3
``io.Custom("EACPS_VERIFIER").Output()``). :func:`check_verifier` checks an object's structure and
names everything missing; :func:`validate_result` checks every result, whoever produced it;
:func:`score` does both around one scoring call. ``verifiers.base.Verifier`` is this pack's own
base class and satisfies the protocol.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

SCORE_MIN = 0.0
SCORE_MAX = 10.0
SOCKET_TYPE = "EACPS_VERIFIER"
NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
DOCS = "docs/verifiers.md, 'Verifier protocol'"


class VerifierError(RuntimeError):
    """A verifier is malformed or could not produce valid scores. The message says what to change."""


@dataclass(frozen=True)
class VerifierResult:
    """Per-image scores of one batch (what :func:`validate_result` returns).

    scores: aspect name -> float64 tensor [B] in [0, 10], on the CPU.
    raw:    aspect name -> float64 tensor [B], the model's own value before mapping (documented
            per verifier), on the CPU.
    """

    scores: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor]


_MISSING = object()


def _describe(value: Any) -> str:
    return "missing" if value is _MISSING else f"a {type(value).__name__} ({value!r:.60})"


def check_verifier(obj: Any) -> None:
    """Check that ``obj`` provides the verifier protocol (module docstring).

    Raises VerifierError naming every missing or malformed attribute and where the protocol is
    documented. Checks structure only; results are checked by :func:`validate_result`.
    """
    problems: list[str] = []
    values = {name: getattr(obj, name, _MISSING) for name in
              ("kind", "identity", "aspects", "uses_reference", "requires_reference", "patchers", "score")}

    kind = values["kind"]
    if not isinstance(kind, str) or not NAME.match(kind):
        problems.append(f"'kind' must be a str of letters, digits, '_' or '-', got {_describe(kind)}")
    identity = values["identity"]
    if not isinstance(identity, str) or not identity.strip():
        problems.append(f"'identity' must be a non-empty str, got {_describe(identity)}")
    aspects = values["aspects"]
    if not isinstance(aspects, tuple | list) or not aspects:
        problems.append(f"'aspects' must be a non-empty tuple of str, got {_describe(aspects)}")
    else:
        bad = [a for a in aspects if not isinstance(a, str) or not NAME.match(a)]
        if bad:
            problems.append(f"'aspects' entries must be str of letters, digits, '_' or '-': {bad!r}")
        dup = sorted({a for a in aspects if isinstance(a, str) and list(aspects).count(a) > 1})
        if dup:
            problems.append(f"'aspects' must be unique, repeated: {dup}")
    for flag in ("uses_reference", "requires_reference"):
        if not isinstance(values[flag], bool):
            problems.append(f"'{flag}' must be a bool, got {_describe(values[flag])}")
    if values["requires_reference"] is True and values["uses_reference"] is False:
        problems.append("'requires_reference' is True but 'uses_reference' is False")
    if not isinstance(values["patchers"], list | tuple):
        problems.append(f"'patchers' must be a list of ComfyUI ModelPatchers (may be empty), got "
                        f"{_describe(values['patchers'])}")
    if not callable(values["score"]):
        problems.append(f"'score' must be a method score(images, prompt, reference), got {_describe(values['score'])}")
    if problems:
        raise VerifierError(
            f"{type(obj).__module__}.{type(obj).__qualname__} is not an EACPS verifier: " + "; ".join(problems) + f". See {DOCS}."
        )


def check_inputs(identity: str, images: torch.Tensor, reference: torch.Tensor | None,
                 requires_reference: bool) -> None:
    """Check what a verifier is asked to score: images [B, H, W, 3], reference [1, H', W', 3] or
    None (required when ``requires_reference``). Raises VerifierError."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] < 1:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise VerifierError(f"{identity}: expected IMAGE [B, H, W, 3] with B >= 1, got {shape}")
    if requires_reference and reference is None:
        raise VerifierError(
            f"{identity}: needs a reference image (the edit input or identity source); "
            "connect one to the node's 'reference' input"
        )
    if reference is not None and (not isinstance(reference, torch.Tensor) or reference.ndim != 4
                                  or reference.shape[0] != 1 or reference.shape[-1] != 3):
        shape = tuple(reference.shape) if isinstance(reference, torch.Tensor) else type(reference).__name__
        raise VerifierError(f"{identity}: the reference must be one image [1, H, W, 3], got {shape}")


def _values(identity: str, field: str, mapping: Any, aspects: tuple[str, ...], batch: int) -> dict:
    if not isinstance(mapping, Mapping):
        raise VerifierError(f"{identity}: result.{field} must be a mapping aspect -> tensor [B], got "
                            f"a {type(mapping).__name__}")
    if set(mapping) != set(aspects):
        raise VerifierError(f"{identity}: result.{field} has aspects {sorted(map(str, mapping))}, declared "
                            f"{list(aspects)}")
    out = {}
    for aspect in aspects:
        values = mapping[aspect]
        if not isinstance(values, torch.Tensor):
            raise VerifierError(f"{identity}: result.{field}['{aspect}'] is a {type(values).__name__}, "
                                f"expected a torch tensor [{batch}]")
        if values.is_complex() or values.dtype == torch.bool:
            raise VerifierError(f"{identity}: result.{field}['{aspect}'] has dtype {values.dtype}, expected a "
                                "real number per image")
        values = values.detach().to("cpu", torch.float64)
        if values.shape != (batch,):
            raise VerifierError(f"{identity}: aspect '{aspect}' of result.{field} has shape "
                                f"{tuple(values.shape)}, expected ({batch},)")
        out[aspect] = values
    return out


def validate_result(result: Any, identity: str, aspects: tuple[str, ...], batch: int) -> VerifierResult:
    """Check one scoring result, whoever produced it, and return it as a CPU float64 VerifierResult.

    ``result`` is any object with ``scores`` and ``raw`` mappings aspect -> tensor [batch]; both
    must hold exactly the declared ``aspects``. Scores must be finite and on [0, 10]. Raises
    VerifierError naming the verifier (``identity``), the aspect and the offending images.
    """
    scores = getattr(result, "scores", _MISSING)
    raw = getattr(result, "raw", _MISSING)
    if scores is _MISSING or raw is _MISSING:
        raise VerifierError(f"{identity}: score() returned a {type(result).__name__}; expected an object with "
                            f"'scores' and 'raw' mappings aspect -> tensor [B]. See {DOCS}.")
    scores = _values(identity, "scores", scores, aspects, batch)
    raw = _values(identity, "raw", raw, aspects, batch)
    for aspect, values in scores.items():
        bad = ~torch.isfinite(values)
        if bad.any():
            raise VerifierError(
                f"{identity}: aspect '{aspect}' is not finite for image(s) "
                f"{bad.nonzero().flatten().tolist()} (values {values.tolist()}); the verifier model "
                "or its weights are broken, or the image is degenerate"
            )
        if (values < SCORE_MIN - 1e-9).any() or (values > SCORE_MAX + 1e-9).any():
            raise VerifierError(f"{identity}: aspect '{aspect}' left [0, 10]: {values.tolist()}")
    return VerifierResult(scores=scores, raw=raw)


def score(verifier: Any, images: torch.Tensor, prompt: str, reference: torch.Tensor | None = None) -> VerifierResult:
    """Score ``images`` with any protocol verifier: check its structure, load its ModelPatchers
    through ComfyUI's model management, check the inputs, call ``verifier.score`` (with the
    reference only if it uses one) and validate the result. Raises VerifierError."""
    check_verifier(verifier)
    aspects = tuple(verifier.aspects)
    check_inputs(verifier.identity, images, reference, verifier.requires_reference)
    if verifier.patchers:
        from .management import load_patchers

        load_patchers(list(verifier.patchers), verifier.identity)
    result = verifier.score(images, prompt, reference if verifier.uses_reference else None)
    return validate_result(result, verifier.identity, aspects, images.shape[0])
