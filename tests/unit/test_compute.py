"""Screening plans (successive halving), the stop rule and the cost ledger, without a host."""

import math

import pytest

from eacps.search.budget import Ledger
from eacps.search.halving import Advance, Screening, SuccessiveHalving, parse_rungs
from eacps.search.noise import NoiseRecipe
from eacps.search.pool import Candidate, Pool, Screen, SearchError
from eacps.search.potential import compute_potentials
from eacps.search.stopping import StopRule
from eacps.search.strategy import select_elites


def test_chain_halving_continues_survivors_from_their_rung():
    plan = SuccessiveHalving(8, 20, Screening(rungs=(4, 10), keep=0.5, kind="chain"))
    first = plan.ask()
    assert first == [Advance(s, 0, 4, 20) for s in range(8)]
    plan.tell([1, 8, 3, 7, 2, 6, 5, 4])  # slots 1, 3, 5, 6 are the better half
    second = plan.ask()
    assert [a.slot for a in second] == [1, 3, 5, 6]  # best preview first
    assert all((a.start, a.stop, a.steps) == (4, 10, 20) for a in second)
    plan.tell([0.5, 9.0, 1.0, 2.0])  # slots 3 and 6 survive
    assert plan.ask() == []
    assert plan.survivors() == [3, 6]
    assert plan.finish(3) == Advance(3, 10, 20, 20)
    assert plan.pruned() == [0, 1, 2, 4, 5, 7]
    assert plan.screens[1] == [Screen(4, "chain", 8.0, True), Screen(10, "chain", 0.5, False)]
    assert plan.screens[0] == [Screen(4, "chain", 1.0, False)]
    # 8 x 4 + 4 x 6 + 2 x 10 sampler steps, against 8 x 20 without screening
    assert plan.planned_steps() == 8 * 4 + 4 * 6 + 2 * 10


def test_preview_screening_runs_short_separate_schedules_then_full_runs_from_noise():
    plan = SuccessiveHalving(6, 20, Screening(rungs=(3,), keep=1 / 3, kind="preview"))
    assert plan.planned_steps() == 6 * 3 + 2 * 20
    assert plan.ask() == [Advance(s, 0, 3, 3) for s in range(6)]
    plan.tell([5, 5, 1, 9, 0, 2])  # ties go to the earlier slot
    assert plan.survivors() == [3, 0]
    assert plan.finish(0) == Advance(0, 0, 20, 20)


def test_keep_rounds_up_and_never_below_one():
    plan = SuccessiveHalving(3, 10, Screening(rungs=(2, 4, 6), keep=0.1))
    plan.ask()
    plan.tell([1, 2, 3])
    assert plan.survivors() == [2]
    assert plan.ask() == []  # one left: nothing more to screen
    assert plan.finish(2) == Advance(2, 2, 10, 10)


def test_without_rungs_every_candidate_runs_the_whole_schedule():
    plan = SuccessiveHalving(4, 7, Screening())
    assert plan.ask() == []
    assert [plan.finish(s) for s in plan.survivors()] == [Advance(s, 0, 7, 7) for s in range(4)]
    assert plan.planned_steps() == 28


@pytest.mark.parametrize("screening, message", [
    (Screening(rungs=(4,), keep=1.0), "prune_keep"),
    (Screening(rungs=(4,), keep=0.0), "prune_keep"),
    (Screening(rungs=(10, 4)), "increasing"),
    (Screening(rungs=(0,)), "increasing"),
    (Screening(rungs=(20,)), "below the 20"),
    (Screening(rungs=(4,), kind="beam"), "prune_kind"),
])
def test_bad_screening_is_refused_with_what_to_change(screening, message):
    with pytest.raises(SearchError, match=message):
        SuccessiveHalving(8, 20, screening)


def test_parse_rungs():
    assert parse_rungs("") == ()
    assert parse_rungs("4") == (4,)
    assert parse_rungs(" 4, 10 ") == (4, 10)
    assert parse_rungs("4; 10") == parse_rungs("4,,10,") == (4, 10)  # ';' separates too; empty parts are skipped
    with pytest.raises(SearchError) as err:
        parse_rungs("4.5")
    assert str(err.value) == ("prune_steps: '4.5' is not a whole number or a percentage; write steps like '4' or "
                              "'4, 10', or fractions of the steps like '25%, 50%'")


def test_parse_rungs_percentages_of_the_steps():
    # hand-computed: 25% of 20 = 5, 50% of 20 = 10; of 30: 7.5 -> 8 (half up), 15; of 4: 1, 2
    assert parse_rungs("25%, 50%", 20) == (5, 10)
    assert parse_rungs("25%, 50%", 30) == (8, 15)
    assert parse_rungs("25%, 50%", 4) == (1, 2)
    assert parse_rungs("25%, 50%", 3) == (1, 2)  # 0.75 -> 1, 1.5 -> 2
    assert parse_rungs("25%, 50%", 2) == (1,)  # 0.5 -> 1 and 1.0 -> 1 merge
    assert parse_rungs("25%, 50%", 1) == ()  # no step is left to prune at: no screening
    assert parse_rungs("10, 75%", 20) == (10, 15)
    for bad in ("0%", "100%", "x%", "-5%"):
        with pytest.raises(SearchError) as err:
            parse_rungs(bad, 20)
        assert str(err.value) == f"prune_steps: '{bad}' is not a percentage in (0, 100); write e.g. '25%, 50%'"
    with pytest.raises(SearchError, match="not known"):
        parse_rungs("25%")


def test_stop_rule_target_and_plateau():
    assert StopRule().reason([1.0, 2.0]) is None
    assert StopRule(target=5.0).reason([1.0, 4.9]) is None
    assert "target" in StopRule(target=5.0).reason([1.0, 5.0])
    rule = StopRule(plateau=3)
    assert rule.reason([1.0, 3.0, 2.0, 3.0]) is None  # a tie is not an improvement, but only 2 since
    assert "plateau" in rule.reason([1.0, 3.0, 2.0, 3.0, 0.0])
    assert rule.reason([1.0, 3.0, 2.0, 3.5, 0.0]) is None


def test_stop_rule_budget_uses_the_measured_nfe_per_step():
    rule = StopRule(max_nfe=100)
    assert rule.affordable(spent_nfe=60, nfe_per_step=None, candidate_steps=40)
    assert not rule.affordable(spent_nfe=60, nfe_per_step=2.0, candidate_steps=40)  # heun-like: 2 per step
    assert StopRule().affordable(1e9, 5.0, 10**6)
    for bad in (dict(max_nfe=0), dict(plateau=-1), dict(target=math.inf)):
        with pytest.raises(SearchError):
            StopRule(**bad)


def test_ledger_sums_and_reports_full_sample_equivalents():
    a = Ledger(calls=4, nfe=8.0, passes=16.0, steps=8, decodes=2, sampling_s=1.0, cfg_batched=True, full_nfe=4.0)
    b = Ledger(calls=2, nfe=2.0, passes=2.0, steps=2, verifier_calls=1, verifier_images=2, scoring_s=0.5,
               cfg_batched=False)
    s = a + b
    assert (s.calls, s.nfe, s.passes, s.steps, s.decodes, s.verifier_calls) == (6, 10.0, 18.0, 10, 2, 1)
    assert s.cfg_batched is True and s.full_nfe == 4.0 and s.full_samples == 2.5
    d = s.to_dict()
    assert d["seconds"] == {"sampling": 1.0, "decoding": 0.0, "scoring": 0.5}
    assert Ledger().full_samples is None


def test_pruned_candidates_get_no_potential_and_are_never_elites():
    pool = Pool(setup=None, k_global=3)
    pruned = (Screen(4, "chain", 9.9, False),)
    pool = pool.add([
        Candidate(0, NoiseRecipe(1), 0, None, potential=1.0),
        Candidate(1, NoiseRecipe(2), 0, None, screens=pruned),
        Candidate(2, NoiseRecipe(3), 0, None, potential=2.0),
    ])
    assert pool.get(1).pruned_at == 4 and not pool.get(0).pruned
    assert compute_potentials(pool, {}) == {0: 0.0, 2: 0.0}
    assert select_elites(pool, 2) == (2, 0)
    with pytest.raises(SearchError, match="not pruned"):
        select_elites(pool, 3)
    assert pool.budget()["pruned"] == 1 and pool.budget()["finished"] == 2


def test_only_a_target_or_a_plateau_needs_scores_while_sampling():
    # an NFE budget stops on counted cost alone; off (all defaults) needs nothing
    assert not StopRule().needs_scores and not StopRule().active
    assert not StopRule(max_nfe=100.0).needs_scores and StopRule(max_nfe=100.0).active
    assert StopRule(plateau=1).needs_scores and StopRule(target=0.0).needs_scores


def test_an_invalid_preview_ranks_last_and_a_non_finite_one_is_refused():
    plan = SuccessiveHalving(4, 20, Screening(rungs=(4,), keep=0.5, kind="chain"))
    plan.ask()
    plan.tell([None, 1.0, 3.0, 2.0])  # None: that preview was invalid (NaN decode)
    assert sorted(plan.survivors()) == [2, 3]
    plan = SuccessiveHalving(2, 20, Screening(rungs=(4,), keep=0.5, kind="chain"))
    plan.ask()
    with pytest.raises(SearchError, match=r"preview potentials must be finite \(None: an invalid preview\), got "
                                          r"\[nan, 1.0\]"):
        plan.tell([float("nan"), 1.0])
