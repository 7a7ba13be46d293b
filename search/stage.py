"""One stage of a search driven through a runner: screening rungs, then finishing under a stop rule.

The runner is the one place that runs candidates (nodes/runner.py wraps ComfyUI's sampler; a
remote runner can send the same work elsewhere). It takes ``Task`` s, "advance this noise recipe
over schedule steps [start, stop) (from this saved state) and decode", and returns one ``Outcome``
per task plus a ``Ledger`` of what the call cost. ``run_stage`` only asks the screening plan
(search/halving.py) and the stop rule (search/stopping.py) what to run next and tells them the
potentials, so every strategy works on every runner. Free of ComfyUI: states and images are opaque.

Candidate numbering: finished candidates join the pool in the order they finish (without
screening: proposal order, as before; with screening: best preview first), pruned ones after them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from .budget import Ledger
from .halving import Screening, SuccessiveHalving
from .noise import NoiseRecipe
from .pool import Candidate, Pool, Round
from .stopping import StopRule
from .strategy import Proposal, to_candidates

DECODES = ("final", "x0", "none")


@dataclass(frozen=True)
class Task:
    """Advance one noise recipe over steps [start, stop) of a ``steps``-step schedule.

    start == 0 starts from the recipe's noise; start > 0 continues from ``state`` (the latent an
    earlier Outcome returned at that step). decode: "final" decodes the latent at ``stop`` (use it
    when stop == steps), "x0" decodes the denoiser's x0 prediction at the last step run (a preview
    of where the chain is heading), "none" decodes nothing."""

    recipe: NoiseRecipe
    start: int
    stop: int
    steps: int
    state: Any = None
    decode: str = "final"


@dataclass(frozen=True)
class Outcome:
    """state: the latent after ``stop`` ([1, ...] CPU tensor; at the end of the schedule the final
    latent). image: the decoded IMAGE [1, H, W, 3] (None for decode "none"). nfe: denoiser calls
    this candidate took part in. seconds: (what, seconds) shares of this candidate. invalid: why
    it cannot compete (a NaN latent or decode), else None. ran_on: where it
    ran (nodes/remote.py sends work to other ComfyUI instances)."""

    state: Any
    image: Any
    nfe: float
    seconds: tuple[tuple[str, float], ...] = ()
    invalid: str | None = None  # why it cannot compete (non-finite latent or pixels), or None
    ran_on: str = "local"  # the instance that ran it: "local" or a worker's address


class Runner(Protocol):
    def run(self, tasks: list[Task]) -> tuple[list[Outcome], Ledger]: ...


Evaluate = Callable[[Pool], Pool]  # scores every unscored, unpruned candidate and sets potentials


def finished_potentials(pool: Pool) -> list[float]:
    return [c.potential for c in pool.candidates if not c.pruned and c.potential is not None]


def run_stage(pool: Pool, proposals: list[Proposal], round_: Round | None, runner: Runner,
              evaluate: Evaluate | None = None, screening: Screening | None = None,
              stop: StopRule | None = None, chunk: int = 8) -> Pool:
    """Run one stage's proposals; returns the grown pool (scored by ``evaluate`` when given).

    Without screening or stop rule this is the plain stage: every proposal runs the whole schedule
    in sub-batches of ``chunk`` and joins the pool in proposal order (``evaluate`` may be None: the
    caller scores later). Screening and stopping need ``evaluate``: previews are scored in a
    scratch pool by the same verifiers and weights; the stop rule is checked before each sub-batch
    of finishing candidates, on the potentials of every finished candidate of the pool."""
    screening = screening or Screening()
    stop = stop or StopRule()
    steps = pool.setup.steps if hasattr(pool.setup, "steps") else None
    if steps is None:
        raise ValueError("run_stage needs a pool whose setup has 'steps'")
    if (screening.active or stop.needs_scores) and evaluate is None:
        raise ValueError("screening and stopping need an evaluate function (verifiers and weights)")
    plan = SuccessiveHalving(len(proposals), steps, screening)
    if pool.stopped:  # an earlier stage already stopped the search: this one is all unspent
        return pool.stop(pool.stopped, len(proposals))
    reason = stop.reason(finished_potentials(pool)) if stop.active else None
    if reason is not None:
        return pool.stop(reason, len(proposals))

    states: dict[int, Any] = {}
    previews: dict[int, Outcome] = {}
    spent = Ledger()
    while work := plan.ask():
        if not _affordable(stop, pool.ledger + spent, sum(a.stop - a.start for a in work)):
            pool = pool.spend(spent).stop(_over_budget(stop, pool.ledger + spent), len(work))
            return _add_pruned(pool, proposals, plan, previews, round_, added_round=False)
        kind = screening.kind
        tasks = [Task(proposals[a.slot].recipe, a.start, a.stop, a.steps,
                      state=states.get(a.slot) if a.start else None, decode="x0" if kind == "chain" else "final")
                 for a in work]
        outcomes, cost = runner.run(tasks)
        spent += cost
        scratch = Pool(setup=pool.setup, k_global=len(tasks), verifiers=pool.verifiers, weights=pool.weights)
        scratch = scratch.add([
            Candidate(id=i, recipe=proposals[a.slot].recipe, generation=proposals[a.slot].generation, parent=None,
                      image=o.image, invalid=o.invalid)
            for i, (a, o) in enumerate(zip(work, outcomes, strict=True))
        ])
        scored = evaluate(scratch)
        spent += scored.ledger
        plan.tell([c.potential for c in scored.candidates])  # None (invalid preview) ranks last
        for a, o in zip(work, outcomes, strict=True):
            states[a.slot] = o.state
            prev = previews.get(a.slot)
            previews[a.slot] = replace(o, nfe=o.nfe + (prev.nfe if prev else 0.0),
                                       seconds=_merge_seconds(prev.seconds if prev else (), o.seconds))
    pool = pool.spend(spent)

    survivors = plan.survivors()
    added_round = False
    for begin in range(0, len(survivors), chunk):
        piece = survivors[begin:begin + chunk]
        finals = [plan.finish(s) for s in piece]
        reason = stop.reason(finished_potentials(pool)) if stop.active else None
        if reason is None and not _affordable(stop, pool.ledger, sum(f.stop - f.start for f in finals)):
            reason = _over_budget(stop, pool.ledger)
        if reason is not None:
            pool = pool.stop(reason, len(survivors) - begin)
            break
        tasks = [Task(proposals[f.slot].recipe, f.start, f.stop, f.steps,
                      state=states.get(f.slot) if f.start else None, decode="final") for f in finals]
        outcomes, cost = runner.run(tasks)
        pool = pool.spend(cost.with_full_nfe(outcomes[0].nfe + (previews[piece[0]].nfe
                                                                   if finals[0].start else 0.0)))
        new = []
        for f, o in zip(finals, outcomes, strict=True):
            prev = previews.get(f.slot)
            (c,) = to_candidates(pool, [proposals[f.slot]], image=[o.image], latent=[o.state])
            new.append(replace(
                c, id=c.id + len(new), screens=tuple(plan.screens[f.slot]), invalid=o.invalid,
                nfe=o.nfe + (prev.nfe if prev else 0.0), timings=_merge_seconds(prev.seconds if prev else (), o.seconds),
                ran_on=o.ran_on,
            ))
        pool = pool.add(new, None if added_round else round_)
        added_round = True
        if evaluate is not None:
            pool = evaluate(pool)

    return _add_pruned(pool, proposals, plan, previews, round_, added_round)


def _merge_seconds(a: tuple, b: tuple) -> tuple:
    """(what, seconds) pairs of two runs of one candidate: seconds add up; "sub_batch" is the last run's."""
    out = dict(a)
    for k, v in b:
        out[k] = v if k == "sub_batch" else out.get(k, 0.0) + v
    return tuple(out.items())


def _affordable(stop: StopRule, spent: Ledger, candidate_steps: int) -> bool:
    per_step = spent.nfe / spent.steps if spent.steps else None
    return stop.affordable(spent.nfe, per_step, candidate_steps)


def _over_budget(stop: StopRule, spent: Ledger) -> str:
    return f"NFE budget {stop.max_nfe:g} reached (spent {spent.nfe:g}; the next sub-batch would exceed it)"


def _add_pruned(pool: Pool, proposals: list[Proposal], plan: SuccessiveHalving, previews: dict[int, Outcome],
                round_: Round | None, added_round: bool) -> Pool:
    """Pruned candidates join after the finished ones, with their last preview as image."""
    pruned = []
    for slot in plan.pruned():
        o = previews[slot]
        (c,) = to_candidates(pool, [proposals[slot]], image=[o.image])
        pruned.append(replace(c, id=c.id + len(pruned), screens=tuple(plan.screens[slot]), nfe=o.nfe,
                              timings=o.seconds, invalid=o.invalid, ran_on=o.ran_on))
    if pruned:
        pool = pool.add(pruned, None if added_round else round_)
    return pool
