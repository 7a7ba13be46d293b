"""The potential U = sum_k w_k v_k over named scores, each v_k on [0, 10].

Weights are written as ``name=weight`` or ``name: weight`` pairs, separated by new lines or commas:
``"realism=4.0\\nconsistency=1.0"`` or ``"clip_score: 1.0, aesthetic: 0.5"``. Lines starting with
``#`` are comments. Every weight must be a finite number >= 0 and at least one must be > 0; a name
may appear once.
"""

from __future__ import annotations

import math
import re

from .pool import Pool, SearchError

_PAIR = re.compile(r"^\s*([A-Za-z0-9_.#\-]+?)\s*[=:]\s*([^=:]+?)\s*$")


def parse_weights(text: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for line in str(text).splitlines():
        if line.strip().startswith("#"):
            continue
        for part in line.split(","):
            if not part.strip():
                continue
            m = _PAIR.match(part)
            if not m:
                raise SearchError(
                    f"weights: cannot read '{part.strip()}'; write name=weight pairs, one per line or "
                    "separated by commas, e.g. 'sharpness=1.0, exposure=0.5'"
                )
            name, value = m.group(1), m.group(2)
            try:
                w = float(value)
            except ValueError:
                raise SearchError(f"weights: '{value}' (for '{name}') is not a number") from None
            if not math.isfinite(w) or w < 0:
                raise SearchError(f"weights: '{name}' has weight {value}; use a finite number >= 0")
            if name in weights:
                raise SearchError(f"weights: '{name}' is given twice; give each score once")
            weights[name] = w
    if not weights:
        raise SearchError("weights: none given; write at least one name=weight pair, e.g. 'sharpness=1.0'")
    if all(w == 0 for w in weights.values()):
        raise SearchError("weights: all are zero, so every candidate would tie; give at least one weight > 0")
    return weights


def compute_potentials(pool: Pool, weights: dict[str, float]) -> dict[int, float]:
    """U for every valid candidate not pruned (the others get none). Refuses names the pool lacks
    and valid candidates missing a weighted score."""
    names = pool.score_names()
    unknown = [n for n in weights if n not in names]
    if unknown:
        available = ", ".join(sorted(names)) or "none (connect a VerifierScore node first)"
        raise SearchError(f"weights name score(s) {unknown} that the pool lacks; available: {available}")
    out: dict[int, float] = {}
    missing: dict[str, list[int]] = {}
    for c in pool.valid_candidates():
        if c.pruned:  # pruned on a preview: no final scores, no potential
            continue
        u = 0.0
        for name, w in weights.items():
            identity, aspect = names[name]
            v = c.score(identity, aspect)
            if v is None:
                missing.setdefault(name, []).append(c.id)
                continue
            u += w * v
        out[c.id] = u
    if missing:
        detail = "; ".join(f"'{n}' missing for candidates {ids}" for n, ids in missing.items())
        raise SearchError(f"{detail}: score the new candidates (VerifierScore) before WeightedPotential")
    return out
