"""bench/quality_compute.py replays EACPS_BestOfN's stopping and screening from one screened pool:
its replay must pick what the pack's own plan (search/halving.py) and stop rule (search/stopping.py)
pick, at the sampler steps the plan spends."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from eacps.search.halving import Screening, SuccessiveHalving
from eacps.search.stopping import StopRule

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def qc():
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("quality_compute")
    finally:
        sys.path.remove(str(BENCH))


def pack_choice(sp, n, rungs, keep, kind, rule, sub_batch):
    """The winner and steps by the pack's own SuccessiveHalving and StopRule."""
    plan = SuccessiveHalving(n, sp["steps"], Screening(rungs, keep, kind))
    while work := plan.ask():
        u = sp["v_at"][rungs[plan.rung]] if kind == "chain" else sp["v_short"]
        plan.tell([u[a.slot] for a in work])
    steps = plan.planned_steps() - sum(sp["steps"] - plan.finish(s).start for s in plan.survivors())
    done = []
    for begin in range(0, len(plan.survivors()), sub_batch):
        if rule.reason([sp["v"][i] for i in done]):
            break
        piece = plan.survivors()[begin:begin + sub_batch]
        steps += sum(sp["steps"] - plan.finish(s).start for s in piece)
        done += piece
    return min(done, key=lambda i: (-sp["v"][i], done.index(i))), steps


@pytest.mark.parametrize("seed", range(6))
def test_replay_picks_what_the_pack_picks(qc, seed):
    rng = np.random.default_rng(seed)
    steps = 20
    sp = {"steps": steps, "v": rng.integers(0, 6, 40).astype(float).tolist(),
          "v_at": {r: rng.integers(0, 6, 40).astype(float).tolist() for r in (2, 5, 10)},
          "v_short": rng.integers(0, 6, 40).astype(float).tolist()}
    for n in (1, 5, 20, 33):
        for rungs, keep, kind in [((), 0.5, "chain"), ((5,), 0.25, "chain"), ((2, 5, 10), 0.5, "chain"),
                                  ((10,), 0.5, "chain"), ((4,), 0.25, "preview")]:
            for target, plateau in [(None, 0), (4.0, 0), (None, 3)]:
                got = qc.replay(sp, n, rungs, keep, kind, target=target, plateau=plateau, sub_batch=4)
                rule = StopRule(target=target, plateau=plateau)
                assert got == pack_choice(sp, n, rungs, keep, kind, rule, 4), (n, rungs, keep, kind, target, plateau)


def test_equal_budget_sizes(qc):
    # chain at 5 of 20 keeping 1/4: n*5 + ceil(n/4)*15 <= 20*20
    n = qc.halving_n(20, 20, (5,), 0.25)
    assert n * 5 + -(-n // 4) * 15 <= 400 < (n + 1) * 5 + -(-(n + 1) // 4) * 15
