"""Early pruning on the denoising chain (successive halving), in ask/tell form, free of ComfyUI.

A stage screens its candidates at one or more rungs before finishing only the best of them:

- ``chain``: every candidate runs from its noise to the first rung's step; the x0 prediction there
  (the denoiser's estimate of the final image, decoded) is scored; the best ``keep`` fraction
  continue from their saved state to the next rung, and so on; survivors run on to the last step.
  Nothing is recomputed: a survivor costs exactly one full run.
- ``preview``: every candidate runs a separate short schedule of ``rung`` steps (a complete, coarse
  sample of the same noise), which is scored; the best ``keep`` fraction get the next rung's (or the
  full) run from their noise. The short runs are extra cost.

Successive halving is Jamieson & Talwalkar (2016); ``keep`` = 1/2 is its classic form. At each rung
``max(1, ceil(keep * alive))`` candidates survive; ties go to the earlier candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .pool import Screen, SearchError

KINDS = ("chain", "preview")


@dataclass(frozen=True)
class Screening:
    """rungs: the steps at which candidates are scored, strictly increasing, each in [1, steps);
    empty: no screening. keep: the fraction kept at each rung, in (0, 1). kind: "chain" or "preview"."""

    rungs: tuple[int, ...] = ()
    keep: float = 0.5
    kind: str = "chain"

    @property
    def active(self) -> bool:
        return bool(self.rungs)

    def check(self, steps: int) -> None:
        if self.kind not in KINDS:
            raise SearchError(f"prune_kind = {self.kind!r}: use one of {', '.join(KINDS)}")
        if not self.rungs:
            return
        if not (isinstance(self.keep, (int, float)) and math.isfinite(self.keep) and 0.0 < self.keep < 1.0):
            raise SearchError(f"prune_keep = {self.keep!r}: use a fraction in (0, 1), e.g. 0.5 keeps the better half")
        if any(not isinstance(r, int) or r < 1 for r in self.rungs) or list(self.rungs) != sorted(set(self.rungs)):
            raise SearchError(f"prune_steps = {list(self.rungs)}: use increasing whole steps >= 1, e.g. '4' or '4, 10'")
        if self.rungs[-1] >= steps:
            raise SearchError(
                f"prune_steps = {list(self.rungs)}: every pruning step must be below the {steps} sampling steps"
            )


def parse_rungs(text: str, steps: int | None = None) -> tuple[int, ...]:
    """The pruning steps of a ``prune_steps`` text. '4, 10' -> (4, 10); '' -> () (no screening).
    A part ending in '%' is a fraction of the ``steps`` sampling steps, rounded half up: '25%, 50%'
    with 20 steps -> (5, 10), with 30 -> (8, 15); percentages that land below step 1 or at or past
    the last step are dropped (a short schedule has fewer rungs, or none), and duplicates merged.
    Raises SearchError for text that is neither, or for a percentage when ``steps`` is None."""
    out = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if part.endswith("%"):
            try:
                percent = float(part[:-1])
            except ValueError:
                percent = math.nan
            if not (math.isfinite(percent) and 0 < percent < 100):
                raise SearchError(f"prune_steps: '{part}' is not a percentage in (0, 100); write e.g. '25%, 50%'")
            if steps is None:
                raise SearchError(f"prune_steps: '{part}' is a percentage of the sampling steps, which are not known")
            rung = math.floor(percent / 100 * steps + 0.5)
            if 1 <= rung < steps and rung not in out:
                out.append(rung)
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise SearchError(f"prune_steps: '{part}' is not a whole number or a percentage; write steps like "
                              "'4' or '4, 10', or fractions of the steps like '25%, 50%'") from None
    return tuple(out)


@dataclass(frozen=True)
class Advance:
    """Work for the runner: run candidate ``slot`` of the stage over schedule steps [start, stop) of
    a schedule of ``steps`` steps. start > 0 continues the chain from the state saved at start."""

    slot: int
    start: int
    stop: int
    steps: int

    @property
    def finishes(self) -> bool:
        return self.stop == self.steps


class SuccessiveHalving:
    """The screening rungs of one stage of ``n`` candidates sampled with ``steps`` steps.

    ask() gives the next rung's work (empty once screening is over); tell(potentials) takes one
    preview potential per asked Advance, in order (None for an invalid preview: ranked last). Then ``survivors()`` are the slots to finish, best
    preview first, and ``finish(slot)`` the Advance that finishes one.
    """

    def __init__(self, n: int, steps: int, screening: Screening):
        screening.check(steps)
        self.n, self.steps, self.screening = int(n), int(steps), screening
        self.alive = list(range(self.n))
        self.rung = 0
        self.screens: dict[int, list[Screen]] = {i: [] for i in range(self.n)}
        self._asked: list[Advance] | None = None

    def ask(self) -> list[Advance]:
        if self._asked is not None:
            raise SearchError("tell() the preview potentials of the last rung before asking again")
        if self.rung >= len(self.screening.rungs) or len(self.alive) <= 1:
            return []
        step = self.screening.rungs[self.rung]
        if self.screening.kind == "chain":
            start = self.screening.rungs[self.rung - 1] if self.rung else 0
            work = [Advance(s, start, step, self.steps) for s in self.alive]
        else:
            work = [Advance(s, 0, step, step) for s in self.alive]
        self._asked = work
        return list(work)

    def tell(self, potentials) -> None:
        if self._asked is None:
            raise SearchError("nothing was asked")
        values = [None if u is None else float(u) for u in potentials]
        if len(values) != len(self._asked):
            raise SearchError(f"told {len(values)} preview potentials for {len(self._asked)} candidates")
        if not all(u is None or math.isfinite(u) for u in values):
            raise SearchError(f"preview potentials must be finite (None: an invalid preview), got {values}")
        ranked = sorted(zip(values, (a.slot for a in self._asked), strict=True),
                        key=lambda us: (us[0] is None, -(us[0] or 0.0), us[1]))
        n_keep = max(1, math.ceil(self.screening.keep * len(ranked)))
        kept = {slot for _, slot in ranked[:n_keep]}
        step = self.screening.rungs[self.rung]
        for u, slot in zip(values, (a.slot for a in self._asked), strict=True):
            self.screens[slot].append(Screen(step=step, kind=self.screening.kind, potential=u, kept=slot in kept))
        self.alive = [slot for _, slot in ranked[:n_keep]]  # best preview first
        self.rung += 1
        self._asked = None

    def planned_survivors(self) -> int:
        """How many candidates finish, if nothing stops the plan early."""
        alive = self.n
        for _ in self.screening.rungs:
            if alive <= 1:
                break
            alive = max(1, math.ceil(self.screening.keep * alive))
        return alive

    def planned_steps(self) -> int:
        """Sampler steps (summed over candidates) of the whole plan, if nothing stops it early."""
        alive, total, at = self.n, 0, 0
        for step in self.screening.rungs:
            if alive <= 1:
                break
            total += alive * (step - at if self.screening.kind == "chain" else step)
            at = step if self.screening.kind == "chain" else 0
            alive = max(1, math.ceil(self.screening.keep * alive))
        return total + alive * (self.steps - at)

    def pruned(self) -> list[int]:
        """Slots dropped at some rung, in slot order."""
        alive = set(self.alive)
        return [s for s in range(self.n) if s not in alive]

    def survivors(self) -> list[int]:
        return list(self.alive)

    def finish(self, slot: int) -> Advance:
        screened = self.screening.kind == "chain" and bool(self.screens[slot])
        start = self.screens[slot][-1].step if screened else 0
        return Advance(slot, start, self.steps, self.steps)
