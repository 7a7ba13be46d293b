"""The candidate pool: immutable, growing. Every operation returns a new Pool.

A pool carries an opaque sampling ``setup`` (the nodes put ComfyUI's model, conditioning, latent
template and sampler settings there, so later stages cannot drift from stage 1), its candidates,
the verifiers that scored them, the potential weights, the current elite selection and the
refinement rounds run so far. ``pool_id`` is unique per search and is kept by every derived pool,
so an elite selection made on another search is detectable.

Score names: each verifier contributes its aspects. A score is stored per (verifier identity,
aspect) and is addressed by name: the bare aspect ("sharpness") when one verifier in the pool
produces it, otherwise "<verifier kind>.<aspect>", or "<verifier kind>#<n>.<aspect>" when two
verifiers of the same kind produce it (n counts that kind's verifiers in the order they joined the
pool, from 1). The qualified forms are always accepted.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from .budget import Ledger
from .noise import NoiseRecipe


class SearchError(ValueError):
    """Bad input to the search. The message says what to change."""


@dataclass(frozen=True)
class Screen:
    """One screening rung a candidate went through (search/halving.py): scored after ``step`` steps
    of the chain ("chain": its decoded x0 prediction) or of a separate short run ("preview")."""

    step: int
    kind: str
    potential: float | None  # None: the preview was invalid (non-finite), ranked last
    kept: bool


@dataclass(frozen=True)
class Candidate:
    id: int
    recipe: NoiseRecipe
    generation: int  # 0: global exploration; r: refinement round r
    parent: int | None  # candidate id of the elite it was derived from
    image: Any = field(default=None, repr=False, compare=False)  # IMAGE [1, H, W, 3], CPU float32
    latent: Any = field(default=None, repr=False, compare=False)  # final latent samples [1, C, ...]
    scores: tuple[tuple[str, str, float], ...] = ()  # (verifier identity, aspect, value in [0, 10])
    potential: float | None = None
    elite: bool = False
    timings: tuple[tuple[str, float], ...] = ()  # (what, seconds), e.g. ("sample", 0.05)
    invalid: str | None = None  # why the candidate cannot compete (NaN decode, non-finite score), or None
    screens: tuple[Screen, ...] = ()  # screening rungs passed (and the one it was pruned at)
    nfe: float = 0.0  # denoiser calls this candidate took part in (search/budget.py)
    ran_on: str = "local"  # the instance that sampled it: "local" or a worker's address

    @property
    def pruned_at(self) -> int | None:
        """The step at which screening dropped it (its image is then that rung's preview), or None."""
        return next((s.step for s in self.screens if not s.kept), None)

    @property
    def pruned(self) -> bool:
        return self.pruned_at is not None

    @property
    def seed(self) -> int:
        return self.recipe.seed

    def score(self, identity: str, aspect: str) -> float | None:
        for ident, asp, value in self.scores:
            if ident == identity and asp == aspect:
                return value
        return None

    def scored_by(self, identity: str) -> bool:
        return any(ident == identity for ident, _, _ in self.scores)

    @property
    def valid(self) -> bool:
        return self.invalid is None


@dataclass(frozen=True)
class VerifierInfo:
    identity: str
    kind: str
    aspects: tuple[str, ...]
    context: str  # fingerprint of what the scores depend on besides the image (prompt, reference)
    note: str | None = None  # e.g. that it read only the start of a long prompt


@dataclass(frozen=True)
class Selection:
    pool_id: str
    ids: tuple[int, ...]  # best first
    size: int  # how many candidates the pool had when the elites were chosen


@dataclass(frozen=True)
class Round:
    """One refinement round: K_local children around each of the M elites."""

    elites: tuple[int, ...]
    k_local: int
    mode: str
    strength: float  # the radius used in this round (after annealing)

    @property
    def size(self) -> int:
        return len(self.elites) * self.k_local


@dataclass(frozen=True)
class Pool:
    setup: Any = field(repr=False, compare=False)
    k_global: int
    pool_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    candidates: tuple[Candidate, ...] = ()
    verifiers: tuple[VerifierInfo, ...] = ()
    weights: tuple[tuple[str, float], ...] | None = None
    selection: Selection | None = None
    rounds: tuple[Round, ...] = ()
    ledger: Ledger = field(default_factory=Ledger)
    stopped: str | None = None  # why the search stopped before its plan was spent
    unspent: int = 0  # candidates of the plan never started (adaptive stopping, budget)

    # ---- reading -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.candidates)

    def get(self, cid: int) -> Candidate:
        if not (0 <= cid < len(self.candidates)) or self.candidates[cid].id != cid:
            raise SearchError(f"candidate {cid} is not in pool {self.pool_id[:8]} ({len(self)} candidates)")
        return self.candidates[cid]

    def verifier(self, identity: str) -> VerifierInfo | None:
        return next((v for v in self.verifiers if v.identity == identity), None)

    def score_names(self) -> dict[str, tuple[str, str]]:
        """Every accepted score name -> (verifier identity, aspect)."""
        by_aspect: dict[str, list[VerifierInfo]] = {}
        for v in self.verifiers:
            for a in v.aspects:
                by_aspect.setdefault(a, []).append(v)
        names: dict[str, tuple[str, str]] = {}
        order: dict[str, int] = {}
        numbered: dict[str, str] = {}
        for v in self.verifiers:
            order[v.kind] = order.get(v.kind, 0) + 1
            numbered[v.identity] = f"{v.kind}#{order[v.kind]}"
        for aspect, vs in by_aspect.items():
            kinds = [v.kind for v in vs]
            for v in vs:
                names[f"{numbered[v.identity]}.{aspect}"] = (v.identity, aspect)
                if kinds.count(v.kind) == 1:
                    names[f"{v.kind}.{aspect}"] = (v.identity, aspect)
            if len(vs) == 1:
                names[aspect] = (vs[0].identity, aspect)
        return names

    def display_names(self) -> dict[tuple[str, str], str]:
        """(identity, aspect) -> the shortest accepted name, as shown in reports."""
        out: dict[tuple[str, str], str] = {}
        for name, key in sorted(self.score_names().items(), key=lambda kv: len(kv[0])):
            out.setdefault(key, name)
        return out

    def budget(self) -> dict:
        n = self.k_global + sum(r.size for r in self.rounds)
        return {
            "K_global": self.k_global,
            "generations": len(self.rounds),
            "rounds": [
                {"M": len(r.elites), "K_local": r.k_local, "mode": r.mode, "strength": r.strength,
                 "elites": list(r.elites)}
                for r in self.rounds
            ],
            "N": n,
            "formula": " + ".join([str(self.k_global)] + [f"{len(r.elites)}*{r.k_local}" for r in self.rounds])
            + f" = {n}",
            "candidates": len(self.candidates),
            "finished": sum(not c.pruned for c in self.candidates),
            "pruned": sum(c.pruned for c in self.candidates),
            "unspent": self.unspent,
            "stopped": self.stopped,
        }

    def valid_candidates(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.valid)

    def check_any_valid(self) -> None:
        """Raise when no candidate can compete, naming every candidate and why."""
        if self.candidates and not self.valid_candidates():
            reasons = "; ".join(f"candidate {c.id}: {c.invalid}" for c in self.candidates)
            raise SearchError(f"every candidate is invalid, nothing can win. {reasons}")

    # ---- deriving ------------------------------------------------------------------------
    def add(self, candidates: list[Candidate], round_: Round | None = None) -> Pool:
        start = len(self.candidates)
        for i, c in enumerate(candidates):
            if c.id != start + i:
                raise SearchError(f"new candidate id {c.id}, expected {start + i}")
            if c.parent is not None:
                self.get(c.parent)
        rounds = self.rounds + ((round_,) if round_ is not None else ())
        return replace(self, candidates=self.candidates + tuple(candidates), rounds=rounds)

    def with_scores(self, info: VerifierInfo, scores: dict[int, dict[str, float]], seconds: dict[int, float]) -> Pool:
        """Add one verifier's scores. If the verifier scored earlier under another context (prompt,
        reference), its old scores are dropped: the caller must then pass scores for every candidate."""
        old = self.verifier(info.identity)
        restart = old is not None and old.context != info.context
        if old is None:
            verifiers = self.verifiers + (info,)
        else:  # keep its place, so "<kind>#<n>" names stay stable
            verifiers = tuple(info if v.identity == info.identity else v for v in self.verifiers)
        cands = []
        for c in self.candidates:
            if c.pruned:  # scored on a preview only; never part of the final ranking
                cands.append(c)
                continue
            kept = tuple(s for s in c.scores if not (restart and s[0] == info.identity))
            if c.id in scores and not c.valid:
                raise SearchError(f"candidate {c.id} is invalid ({c.invalid}) and cannot be scored")
            if c.id in scores:
                values = scores[c.id]
                if set(values) != set(info.aspects):
                    raise SearchError(f"candidate {c.id}: scores for {sorted(values)}, expected {list(info.aspects)}")
                for a, v in values.items():
                    if not math.isfinite(v):
                        raise SearchError(f"candidate {c.id}: '{a}' from {info.identity} is not finite ({v})")
                kept = tuple(s for s in kept if s[0] != info.identity) + tuple(
                    (info.identity, a, float(values[a])) for a in info.aspects
                )
                c = replace(
                    c, scores=kept, potential=None, timings=c.timings + ((f"score:{info.identity}", seconds[c.id]),)
                )
            elif restart and c.valid:
                raise SearchError(f"candidate {c.id} lost its {info.identity} scores and got no new ones")
            cands.append(c)
        return replace(self, candidates=tuple(cands), verifiers=verifiers)

    def with_invalid(self, reasons: dict[int, str]) -> Pool:
        """Mark candidates invalid (reason per id): they keep their place, lose any potential and
        are ranked out of elites and winner."""
        for cid in reasons:
            self.get(cid)
        cands = tuple(
            replace(c, invalid=c.invalid or reasons[c.id], potential=None, elite=False) if c.id in reasons else c
            for c in self.candidates
        )
        return replace(self, candidates=cands)

    def with_potentials(self, potentials: dict[int, float], weights: dict[str, float]) -> Pool:
        """Set U per candidate; invalid candidates (absent from ``potentials``) keep None, pruned ones
        (scored on a preview only) are left as they are."""
        cands = tuple(
            c if c.pruned else replace(c, potential=float(potentials[c.id]) if c.valid else None)
            for c in self.candidates
        )
        return replace(self, candidates=cands, weights=tuple(weights.items()))

    def spend(self, cost: Ledger) -> Pool:
        return replace(self, ledger=self.ledger + cost)

    def stop(self, reason: str, unspent: int) -> Pool:
        return replace(self, stopped=self.stopped or reason, unspent=self.unspent + int(unspent))

    def with_elites(self, ids: tuple[int, ...]) -> Pool:
        chosen = set(ids)
        cands = tuple(replace(c, elite=c.id in chosen) for c in self.candidates)
        return replace(self, candidates=cands, selection=Selection(self.pool_id, tuple(ids), len(self.candidates)))
