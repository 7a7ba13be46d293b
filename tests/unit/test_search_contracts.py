"""search/ contracts that mutation testing found unpinned: recipe round trips, the pool's refusals
and budget, the parameter checks and the ask/tell protocol. Expected values are written by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eacps.search.noise import SEED_MAX, NoiseRecipe, slerp, sphere
from eacps.search.pool import Candidate, Pool, SearchError, VerifierInfo
from eacps.search.potential import parse_weights
from eacps.search.strategy import (
    EACPS,
    GlobalExploration,
    LocalRefinement,
    Proposal,
    check_anneal,
    check_count,
    check_mode,
    check_seed,
    check_strength,
    select_elites,
    to_candidates,
)

# ---- noise recipes -----------------------------------------------------------------------


def test_recipes_round_trip_through_their_dict_exactly():
    root = NoiseRecipe(seed=5)
    cases = [
        (root, {"mode": "seed", "seed": 5}),
        (NoiseRecipe(7, "seed_offset", parent=root), {"mode": "seed_offset", "seed": 7, "parent": {"mode": "seed", "seed": 5}}),
        (NoiseRecipe(8, "slerp", 0.25, parent=root),
         {"mode": "slerp", "seed": 8, "strength": 0.25, "parent": {"mode": "seed", "seed": 5}}),
        (NoiseRecipe(9, "sphere", 0.5, parent=root),
         {"mode": "sphere", "seed": 9, "strength": 0.5, "lam": math.cos(0.5 * math.pi / 2),
          "parent": {"mode": "seed", "seed": 5}}),
    ]
    for recipe, expected in cases:
        assert recipe.to_dict() == expected
        assert NoiseRecipe.from_dict(recipe.to_dict()) == recipe
    assert NoiseRecipe(9, "sphere", 0.5, parent=root).cosine == pytest.approx(math.sqrt(0.5))
    assert NoiseRecipe(8, "slerp", 0.25, parent=root).cosine is None and root.cosine is None


def test_recipe_refusals():
    with pytest.raises(ValueError, match="plain seed recipe has no parent"):
        NoiseRecipe(seed=1, parent=NoiseRecipe(seed=2))
    with pytest.raises(ValueError, match="outside"):
        NoiseRecipe(seed=-1)
    with pytest.raises(ValueError) as err:
        NoiseRecipe(3, "jitter", 0.5, parent=NoiseRecipe(1))
    assert str(err.value) == "unknown noise mode 'jitter'; use one of seed_offset, slerp, sphere"
    assert NoiseRecipe(seed=0).seed == 0 and NoiseRecipe(seed=SEED_MAX).seed == 2**64 - 1
    # seed_offset has no radius: any strength is accepted and ignored
    assert NoiseRecipe(3, "seed_offset", 0.0, parent=NoiseRecipe(1)).strength == 0.0
    assert NoiseRecipe(3, "slerp", 1.0, parent=NoiseRecipe(1)).strength == 1.0


def test_slerp_and_sphere_by_hand_in_two_dimensions():
    x, y = torch.tensor([2.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 5.0], dtype=torch.float64)
    # orthogonal unit directions: slerp by s turns by s * 90 degrees, at the parent's norm (2)
    for s in (0.0, 1 / 3, 0.5, 1.0):
        a = s * math.pi / 2
        assert torch.allclose(slerp(s, x, y), torch.tensor([2 * math.cos(a), 2 * math.sin(a)], dtype=torch.float64))
        assert torch.allclose(sphere(s, x, y), torch.tensor([2 * math.cos(a), 2 * math.sin(a)], dtype=torch.float64))
    # parallel (or anti-parallel) directions: nothing to interpolate towards, the parent comes back
    assert torch.allclose(slerp(0.5, x, 3 * x), x)
    assert torch.equal(slerp(0.5, x, x).reshape(x.shape), x)
    # sphere makes the other direction orthogonal first: y + x has the same orthogonal part as y
    assert torch.allclose(sphere(0.5, x, y + 4 * x), sphere(0.5, x, y))


# ---- the pool ------------------------------------------------------------------------------


def proposals(seeds):
    return [Proposal(NoiseRecipe(s), 0, None) for s in seeds]


def test_pool_add_checks_ids_and_parents():
    pool = Pool(setup=None, k_global=2)
    with pytest.raises(SearchError, match="new candidate id 1, expected 0"):
        pool.add([Candidate(id=1, recipe=NoiseRecipe(1), generation=0, parent=None)])
    pool = pool.add(to_candidates(pool, proposals([1, 2])))
    with pytest.raises(SearchError, match="candidate 5 is not in pool"):
        pool.add([Candidate(id=2, recipe=NoiseRecipe(3), generation=1, parent=5)])
    with pytest.raises(SearchError, match="candidate -1 is not in pool"):
        pool.get(-1)
    with pytest.raises(SearchError, match="candidate 2 is not in pool"):
        pool.get(2)
    assert pool.get(1).seed == 2 and len(pool) == 2


def test_budget_by_hand():
    search = EACPS(k_global=3, m=2, k_local=2, seed=4, generations=2, mode="sphere", strength=0.8, anneal=0.5)
    while props := search.ask():
        search.tell([float(i) for i in range(len(props))])
    b = search.pool.budget()
    r = search.pool.rounds
    assert b == {
        "K_global": 3, "generations": 2, "N": 11, "formula": "3 + 2*2 + 2*2 = 11", "candidates": 11,
        "rounds": [{"M": 2, "K_local": 2, "mode": "sphere", "strength": 0.8, "elites": list(r[0].elites)},
                   {"M": 2, "K_local": 2, "mode": "sphere", "strength": 0.4, "elites": list(r[1].elites)}],
        # no screening, no stop rule: every planned candidate finished
        "finished": 11, "pruned": 0, "unspent": 0, "stopped": None,
    }
    assert Pool(setup=None, k_global=5).budget()["formula"] == "5 = 5"


def scored(values: dict[int, float], ctx="c1"):
    pool = Pool(setup=None, k_global=len(values))
    pool = pool.add(to_candidates(pool, proposals(range(10, 10 + len(values)))))
    info = VerifierInfo("v1", "kind", ("a",), ctx)
    return pool.with_scores(info, {i: {"a": v} for i, v in values.items()}, {i: 0.5 for i in values}), info


def test_scores_are_checked_and_a_new_context_replaces_old_scores():
    pool, info = scored({0: 1.0, 1: 2.0})
    assert [c.score("v1", "a") for c in pool.candidates] == [1.0, 2.0]
    assert pool.get(0).timings == (("score:v1", 0.5),) and pool.get(0).scored_by("v1")
    assert pool.get(0).score("v1", "b") is None and pool.get(0).score("v2", "a") is None
    with pytest.raises(SearchError, match=r"candidate 0: scores for \['b'\], expected \['a'\]"):
        pool.with_scores(info, {0: {"b": 1.0}}, {0: 0.0})
    with pytest.raises(SearchError, match="'a' from v1 is not finite"):
        pool.with_scores(info, {0: {"a": float("nan")}}, {0: 0.0})
    # same verifier, same context: rescoring one candidate keeps the other's score
    again = pool.with_scores(info, {1: {"a": 5.0}}, {1: 0.0})
    assert [c.score("v1", "a") for c in again.candidates] == [1.0, 5.0]
    # a new context (prompt/reference): every candidate must get new scores
    new = VerifierInfo("v1", "kind", ("a",), "c2")
    with pytest.raises(SearchError, match="candidate 1 lost its v1 scores"):
        pool.with_scores(new, {0: {"a": 3.0}}, {0: 0.0})
    fresh = pool.with_scores(new, {0: {"a": 3.0}, 1: {"a": 4.0}}, {0: 0.0, 1: 0.0})
    assert [c.score("v1", "a") for c in fresh.candidates] == [3.0, 4.0]
    assert fresh.verifiers == (new,) and all(c.potential is None for c in fresh.candidates)
    # another verifier's scores survive v1's restart, and v1 keeps its place in the order
    other = VerifierInfo("v2", "other", ("b",), "c1")
    both = pool.with_scores(other, {0: {"b": 7.0}, 1: {"b": 8.0}}, {0: 0.0, 1: 0.0})
    restarted = both.with_scores(new, {0: {"a": 3.0}, 1: {"a": 4.0}}, {0: 0.0, 1: 0.0})
    assert [c.scores for c in restarted.candidates] == [(("v2", "b", 7.0), ("v1", "a", 3.0)),
                                                        (("v2", "b", 8.0), ("v1", "a", 4.0))]
    assert restarted.verifiers == (new, other)
    # scoring drops a stale potential
    with_u = pool.with_potentials({0: 1.0, 1: 2.0}, {"a": 1.0})
    assert with_u.weights == (("a", 1.0),)
    assert with_u.with_scores(info, {0: {"a": 9.0}}, {0: 0.0}).get(0).potential is None


def test_display_names_are_the_shortest_accepted_names():
    pool, _ = scored({0: 1.0})
    other = VerifierInfo("v2", "other", ("a", "b"), "c")
    pool = pool.with_scores(other, {0: {"a": 1.0, "b": 2.0}}, {0: 0.0})
    assert pool.display_names() == {("v1", "a"): "kind.a", ("v2", "a"): "other.a", ("v2", "b"): "b"}
    assert pool.verifier("v2") == other and pool.verifier("v3") is None


# ---- parameter checks ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, 0, -1, 1.0, "2", None])
def test_counts_must_be_integers_of_at_least_one(value):
    with pytest.raises(SearchError, match="must be an integer >= 1"):
        check_count("K", value, "the count")


def test_counts_accept_python_and_numpy_integers():
    check_count("K", 1, "x")
    check_count("K", np.int64(3), "x")
    check_seed(0)
    check_seed(np.uint64(2**63))
    check_seed(SEED_MAX)
    for bad in (True, -1, SEED_MAX + 1, 1.5):
        with pytest.raises(SearchError, match=r"seed = .*\[0, 2\^64 - 1\]"):
            check_seed(bad)


@pytest.mark.parametrize("check", [check_strength, check_anneal])
def test_strength_and_anneal_are_in_zero_one(check):
    for good in (1e-9, 0.5, 1, 1.0):
        check(good)
    for bad in (0, 0.0, -0.5, 1.0000001, float("nan"), float("inf"), "0.5", None):
        with pytest.raises(SearchError):
            check(bad)


def test_mode_check_names_the_modes():
    with pytest.raises(SearchError, match="use one of seed_offset, slerp, sphere"):
        check_mode("seed")


# ---- strategies ---------------------------------------------------------------------------


def test_global_seeds_are_below_2_to_the_53():
    seeds = [p.recipe.seed for p in GlobalExploration(64, 1, np.random.default_rng(0)).ask()[1:]]
    assert all(0 <= s < 2**53 for s in seeds)
    assert max(seeds) >= 2**52  # drawn over the whole range (63 draws all below 2^52: p = 2^-63)


def test_m_may_equal_the_pool_size():
    pool = Pool(setup=None, k_global=3)
    pool = pool.add(to_candidates(pool, proposals([1, 2, 3]), potential=[1.0, 3.0, 2.0]))
    assert select_elites(pool, 3) == (1, 2, 0)
    unscored = Pool(setup=None, k_global=2)
    unscored = unscored.add(to_candidates(unscored, proposals([1, 2])))
    with pytest.raises(SearchError, match=r"candidates \[0, 1\] have no potential yet"):
        select_elites(unscored, 1)


def test_refinement_radius_anneals_per_round():
    r = LocalRefinement(1, "slerp", 0.8, 0.5, np.random.default_rng(0))
    assert [r.radius(i) for i in (1, 2, 3)] == pytest.approx([0.8, 0.4, 0.2])
    assert LocalRefinement(1, "seed_offset", 0.8, 0.5, np.random.default_rng(0)).radius(1) == 0.0


def test_ask_tell_protocol_is_enforced():
    search = EACPS(k_global=2, m=1, k_local=1, seed=3, generations=1)
    assert search.budget() == 3 and not search.done()
    with pytest.raises(SearchError, match="nothing was asked"):
        search.tell([])
    first = search.ask()
    with pytest.raises(SearchError, match="tell\\(\\) the scores of the last batch"):
        search.ask()
    with pytest.raises(SearchError, match="told 1 potentials for 2 proposals"):
        search.tell([1.0])
    with pytest.raises(SearchError, match="potentials must be finite"):
        search.tell([1.0, float("inf")])
    search.tell([1.0, 2.0])
    assert [c.potential for c in search.pool.candidates] == [1.0, 2.0] and len(first) == 2
    child = search.ask()
    assert len(child) == 1 and child[0].parent == 1 and not search.done()
    search.tell([0.5])
    assert search.done() and search.ask() == [] and search.best().id == 1
    with pytest.raises(SearchError, match="M = 3 elites, but only K_global = 2"):
        EACPS(k_global=2, m=3, k_local=1, seed=3)
    with pytest.raises(SearchError, match="generations"):
        EACPS(k_global=2, m=1, k_local=1, seed=3, generations=0)


def test_weights_accept_names_with_kind_and_number():
    assert parse_weights("clip_score.clip_score=1, vlm_judge#2.realism: 0.5, a-b=2") == {
        "clip_score.clip_score": 1.0, "vlm_judge#2.realism": 0.5, "a-b": 2.0}
    assert parse_weights("x=0, y=1e-3") == {"x": 0.0, "y": 0.001}


def test_report_by_hand():
    from eacps.search.report import build_report, report_json

    pool, info = scored({0: 2.0, 1: 6.0})
    pool = pool.with_potentials({0: 1.0, 1: 3.0}, {"a": 0.5}).with_elites((1,))
    report = build_report(pool, 1, {"steps": 4})
    assert report == {
        "pool_id": pool.pool_id, "winner": 1, "winner_seed": 11, "budget": pool.budget(), "weights": {"a": 0.5},
        "scores": {"a": {"verifier": "v1", "aspect": "a"}}, "elites": [1], "setup": {"steps": 4},
        "invalid": {}, "prompt_truncated": {},
        # nothing was sampled through a runner here: an empty ledger
        "compute": {"calls": 0, "nfe": 0.0, "passes": 0.0, "steps": 0, "decodes": 0, "verifier_calls": 0,
                    "verifier_images": 0, "cfg_batched": None, "full_nfe": None, "full_samples": None,
                    "seconds": {"sampling": 0.0, "decoding": 0.0, "scoring": 0.0}},
        "candidates": [
            {"id": 0, "seed": 10, "recipe": {"mode": "seed", "seed": 10}, "generation": 0, "parent": None,
             "scores": {"a": 2.0}, "potential": 1.0, "elite": False, "invalid": None, "timings": {"score:v1": 0.5},
             "nfe": 0.0, "ran_on": "local", "fate": "finished", "screens": []},
            {"id": 1, "seed": 11, "recipe": {"mode": "seed", "seed": 11}, "generation": 0, "parent": None,
             "scores": {"a": 6.0}, "potential": 3.0, "elite": True, "invalid": None, "timings": {"score:v1": 0.5},
             "nfe": 0.0, "ran_on": "local", "fate": "finished", "screens": []},
        ],
    }
    assert build_report(pool.with_elites(()), 0)["setup"] == {} and build_report(Pool(setup=None, k_global=1).add(
        to_candidates(Pool(setup=None, k_global=1), proposals([3]))), 0)["weights"] is None
    with pytest.raises(ValueError):
        report_json(pool.with_potentials({0: float("nan"), 1: 1.0}, {"a": 1.0}), 1)  # NaN is not JSON


def test_a_pool_with_no_valid_candidate_names_each_one_and_why():
    pool, _ = scored({0: 2.0, 1: 6.0})
    pool.check_any_valid()  # one valid is enough
    pool.with_invalid({0: "non-finite latent"}).check_any_valid()
    with pytest.raises(SearchError) as err:
        pool.with_invalid({0: "non-finite latent", 1: "image has 3 NaN pixels"}).check_any_valid()
    assert str(err.value) == ("every candidate is invalid, nothing can win. candidate 0: non-finite latent; "
                              "candidate 1: image has 3 NaN pixels")


def test_a_candidate_is_pruned_at_the_first_rung_it_did_not_pass():
    from eacps.search.pool import Screen

    def candidate(*kept):
        screens = tuple(Screen(step=5 * (i + 1), kind="chain", potential=1.0, kept=k) for i, k in enumerate(kept))
        return Candidate(id=0, recipe=NoiseRecipe(1), generation=0, parent=None, screens=screens)

    assert candidate(True, False).pruned_at == 10 and candidate(True, False).pruned
    assert candidate(False).pruned_at == 5
    assert candidate(True, True).pruned_at is None and not candidate(True, True).pruned
    assert candidate().pruned_at is None


def test_stopping_keeps_the_first_reason_and_adds_up_what_was_left_unspent():
    pool = Pool(setup=None, k_global=8).stop("target reached", 3).stop("budget", 2)
    assert pool.stopped == "target reached" and pool.unspent == 5


def test_a_candidates_pictures_stay_out_of_its_repr_and_its_equality():
    """Reports and error messages print candidates: a tensor there would flood them; two records of
    the same candidate compare equal whatever tensors they hold."""
    from dataclasses import replace

    c = Candidate(id=3, recipe=NoiseRecipe(7), generation=0, parent=None, image=torch.zeros(1, 64, 64, 3),
                  latent=torch.zeros(1, 4, 8, 8))
    assert "tensor" not in repr(c) and "NoiseRecipe" in repr(c)
    assert replace(c, image=torch.ones(1, 64, 64, 3), latent=torch.ones(1, 4, 8, 8)) == c


@pytest.mark.parametrize("changes, message", [
    ({"m": 0}, "M = 0: the number of elites must be an integer >= 1"),
    ({"generations": 0}, "generations = 0: the number of refinement generations must be an integer >= 1"),
    ({"m": 9}, "M = 9 elites, but only K_global = 8 global candidates; use M <= K_global"),
])
def test_an_eacps_search_that_cannot_run_says_what_to_change(changes, message):
    with pytest.raises(SearchError) as info:
        EACPS(**{"k_global": 8, "m": 2, "k_local": 2, "seed": 1, **changes})
    assert str(info.value) == message
