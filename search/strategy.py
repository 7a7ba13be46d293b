"""EACPS strategies in ask/tell form. The caller owns the loop: it asks for proposals, samples and
scores them (batched, with progress and Cancel), and tells the results back.

- ``GlobalExploration``: K_global plain seeds. Candidate 0 is the user's own seed, so the search can
  never lose to the plain KSampler under the same verifiers; the others are drawn from the
  injected RNG in [0, 2^53) (exact in JSON and in the browser).
- ``select_elites``: top M by potential, ties broken by the lower candidate id; invalid candidates
  (NaN decode, non-finite score) are ranked out, and fewer than M are kept when fewer are valid.
- ``LocalRefinement``: K_local children per elite with a mode and a strength; round r uses the
  radius strength * anneal^(r - 1). Child seeds come from the injected RNG (seed_offset: the
  paper's elite seed + j); a seed the pool already uses is skipped in every mode.
- ``EACPS``: the whole two-stage search with G refinement generations as one ask/tell object.
  Budget N = K_global + G * M * K_local. Each stage draws from ``stage_rng(seed, round)``, as the
  nodes do, so the driver proposes exactly the candidates the node graph samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .noise import MODES, SEED_MAX, NoiseRecipe
from .pool import Candidate, Pool, Round, SearchError

CHILD_SEED_RANGE = 2**53


@dataclass(frozen=True)
class Proposal:
    recipe: NoiseRecipe
    generation: int
    parent: int | None


def stage_rng(seed: int, round_index: int) -> np.random.Generator:
    """The RNG of one stage of a search started from ``seed``: round 0 is global exploration,
    round r >= 1 the r-th local refinement. Seeding each stage on its own makes the five-node
    graph, the one-node search and the EACPS driver draw the very same seeds."""
    return np.random.default_rng([int(seed), int(round_index)])


# ---- parameter checks (shared by the nodes' validate_inputs and by execution) ---------------
def check_count(name: str, value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise SearchError(f"{name} = {value!r}: {what} must be an integer >= 1")


def check_strength(value, mode: str = "slerp") -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not (0.0 < value <= 1.0):
        raise SearchError(
            f"strength = {value!r} for mode '{mode}': use a number in (0, 1] "
            "(0 would copy the elite; 1 is a fresh direction at the elite's norm)"
        )


def check_anneal(value) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not (0.0 < value <= 1.0):
        raise SearchError(f"anneal = {value!r}: use a factor in (0, 1] (1 keeps the radius constant)")


def check_mode(mode) -> None:
    if mode not in MODES:
        raise SearchError(f"mode = {mode!r}: use one of {', '.join(MODES)}")


def check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not (0 <= seed <= SEED_MAX):
        raise SearchError(f"seed = {seed!r}: use an integer in [0, 2^64 - 1]")


# ---- stage 1 ------------------------------------------------------------------------------
class GlobalExploration:
    def __init__(self, k_global: int, seed: int, rng: np.random.Generator):
        check_count("K_global", k_global, "the number of global candidates")
        check_seed(seed)
        self.k_global, self.seed, self.rng = int(k_global), int(seed), rng

    def ask(self) -> list[Proposal]:
        seeds = [self.seed]
        while len(seeds) < self.k_global:
            s = int(self.rng.integers(0, CHILD_SEED_RANGE))
            if s not in seeds:
                seeds.append(s)
        return [Proposal(NoiseRecipe(seed=s), generation=0, parent=None) for s in seeds]


# ---- selection ------------------------------------------------------------------------------
def select_elites(pool: Pool, m: int) -> tuple[int, ...]:
    check_count("M", m, "the number of elites")
    if m > len(pool):
        raise SearchError(f"M = {m} elites, but the pool has only {len(pool)} candidates; use M <= {len(pool)}")
    pool.check_any_valid()
    valid = [c for c in pool.valid_candidates() if not c.pruned]
    if m > len(valid) and pool.stopped:  # e.g. an NFE budget ran out while screening
        raise SearchError(f"{pool.stopped}, with {len(valid)} candidates finished: too few to choose {m}. Raise "
                          "max_nfe, or screen fewer candidates")
    if m > len(valid) and any(c.pruned for c in pool.candidates):
        raise SearchError(f"M = {m} elites, but only {len(valid)} candidates were not pruned; use M <= {len(valid)}")
    missing = [c.id for c in valid if c.potential is None]
    if missing:
        raise SearchError(
            f"candidates {missing} have no potential yet: put WeightedPotential after the VerifierScore "
            "that scored them"
        )
    ranked = sorted(valid, key=lambda c: (-c.potential, c.id))
    return tuple(c.id for c in ranked[:m])


# ---- stage 2 ------------------------------------------------------------------------------
class LocalRefinement:
    def __init__(self, k_local: int, mode: str, strength: float, anneal: float, rng: np.random.Generator):
        check_count("K_local", k_local, "the number of children per elite")
        check_mode(mode)
        if mode == "seed_offset":
            strength = 0.0  # the paper's s + j has no radius
        else:
            check_strength(strength, mode)
        check_anneal(anneal)
        self.k_local, self.mode, self.strength, self.anneal, self.rng = int(k_local), mode, float(strength), float(anneal), rng

    def radius(self, round_index: int) -> float:
        return self.strength * self.anneal ** (round_index - 1)

    def ask(self, pool: Pool) -> tuple[list[Proposal], Round]:
        sel = pool.selection
        if sel is None:
            raise SearchError("the pool has no elites: put EliteSelect before LocalSeedRefine")
        if sel.pool_id != pool.pool_id:
            raise SearchError(
                f"the elites were selected in another search (pool {sel.pool_id[:8]}), not this one "
                f"({pool.pool_id[:8]}); run EliteSelect on this pool"
            )
        for cid in sel.ids:
            pool.get(cid)
        if sel.size != len(pool):
            raise SearchError(
                f"the elites were chosen among the first {sel.size} candidates, but the pool now has "
                f"{len(pool)}: score the new candidates and run EliteSelect again before LocalSeedRefine"
            )
        round_index = len(pool.rounds) + 1
        strength = self.radius(round_index)
        used = {c.seed for c in pool.candidates}
        proposals: list[Proposal] = []
        for cid in sel.ids:
            elite = pool.get(cid)
            j = 0
            for _ in range(self.k_local):
                if self.mode == "seed_offset":
                    while True:
                        j += 1
                        s = (elite.seed + j) % (SEED_MAX + 1)
                        if s not in used:
                            break
                else:  # a fresh seed, never one the pool already uses (that noise is another candidate's)
                    s = int(self.rng.integers(0, CHILD_SEED_RANGE))
                    while s in used:
                        s = int(self.rng.integers(0, CHILD_SEED_RANGE))
                used.add(s)
                recipe = NoiseRecipe(seed=s, mode=self.mode, strength=strength, parent=elite.recipe)
                proposals.append(Proposal(recipe, generation=round_index, parent=cid))
        return proposals, Round(elites=sel.ids, k_local=self.k_local, mode=self.mode, strength=strength)


def to_candidates(pool: Pool, proposals: list[Proposal], **fields) -> list[Candidate]:
    """Candidates for proposals, numbered after the pool's; fields (per-proposal lists) fill the rest."""
    start = len(pool)
    return [
        Candidate(id=start + i, recipe=p.recipe, generation=p.generation, parent=p.parent,
                  **{k: v[i] for k, v in fields.items()})
        for i, p in enumerate(proposals)
    ]


# ---- the whole search as one ask/tell object ------------------------------------------------
class EACPS:
    """Global exploration, then ``generations`` rounds of elite selection and local refinement.

    ask() returns the next batch of proposals (empty when done); tell(potentials) takes one
    potential per proposal of the last batch. best() is the winning candidate.
    """

    def __init__(self, k_global: int, m: int, k_local: int, seed: int,
                 generations: int = 1, mode: str = "slerp", strength: float = 0.6, anneal: float = 0.5):
        check_count("M", m, "the number of elites")
        check_count("generations", generations, "the number of refinement generations")
        if m > k_global:
            raise SearchError(f"M = {m} elites, but only K_global = {k_global} global candidates; use M <= K_global")
        self.seed = seed
        self.glob = GlobalExploration(k_global, seed, stage_rng(seed, 0))
        self.local_args = (k_local, mode, strength, anneal)
        self.local = LocalRefinement(*self.local_args, stage_rng(seed, 1))
        self.m, self.generations = int(m), int(generations)
        self.pool = Pool(setup=None, k_global=int(k_global))
        self._pending: list[Proposal] | None = None
        self._round: Round | None = None

    def budget(self) -> int:
        return self.glob.k_global + self.generations * self.m * self.local.k_local

    def done(self) -> bool:
        return self._pending is None and len(self.pool.rounds) == self.generations and len(self.pool) > 0

    def ask(self) -> list[Proposal]:
        if self._pending is not None:
            raise SearchError("tell() the scores of the last batch before asking again")
        if self.done():
            return []
        if len(self.pool) == 0:
            self._pending, self._round = self.glob.ask(), None
        else:
            self.pool = self.pool.with_elites(select_elites(self.pool, self.m))
            self.local = LocalRefinement(*self.local_args, stage_rng(self.seed, len(self.pool.rounds) + 1))
            self._pending, self._round = self.local.ask(self.pool)
        return list(self._pending)

    def tell(self, potentials) -> None:
        if self._pending is None:
            raise SearchError("nothing was asked")
        values = [float(u) for u in potentials]
        if len(values) != len(self._pending):
            raise SearchError(f"told {len(values)} potentials for {len(self._pending)} proposals")
        bad = [u for u in values if not math.isfinite(u)]
        if bad:
            raise SearchError(f"potentials must be finite, got {bad}")
        new = to_candidates(self.pool, self._pending, potential=values)
        self.pool = self.pool.add(new, self._round)
        self._pending = None

    def best(self) -> Candidate:
        return self.pool.get(select_elites(self.pool, 1)[0])
