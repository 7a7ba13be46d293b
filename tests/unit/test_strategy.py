"""Ask/tell strategies, the pool, the potential and the budget, without a host."""

import numpy as np
import pytest

from eacps.search.noise import NoiseRecipe
from eacps.search.pool import Candidate, Pool, SearchError, VerifierInfo
from eacps.search.potential import compute_potentials, parse_weights
from eacps.search.strategy import EACPS, GlobalExploration, LocalRefinement, select_elites, to_candidates


def rng(seed=0):
    return np.random.default_rng(seed)


def pool_with(potentials, k_global=None):
    pool = Pool(setup=None, k_global=k_global or len(potentials))
    props = GlobalExploration(len(potentials), 5, rng()).ask()
    return pool.add(to_candidates(pool, props, potential=list(potentials)))


def test_global_exploration_starts_with_the_users_seed_and_is_reproducible():
    a = GlobalExploration(8, 42, rng(1)).ask()
    b = GlobalExploration(8, 42, rng(1)).ask()
    assert [p.recipe for p in a] == [p.recipe for p in b]
    assert a[0].recipe == NoiseRecipe(seed=42)
    assert len({p.recipe.seed for p in a}) == 8
    assert all(p.generation == 0 and p.parent is None and p.recipe.mode == "seed" for p in a)


def test_elites_are_top_m_with_lower_id_winning_ties():
    pool = pool_with([1.0, 3.0, 2.0, 3.0, 0.5])
    assert select_elites(pool, 3) == (1, 3, 2)
    assert select_elites(pool, 1) == (1,)


@pytest.mark.parametrize("mode", ["slerp", "sphere", "seed_offset"])
def test_local_refinement_children_per_elite(mode):
    pool = pool_with([1.0, 3.0, 2.0, 0.0])
    pool = pool.with_elites(select_elites(pool, 2))
    props, round_ = LocalRefinement(3, mode, 0.6, 0.5, rng()).ask(pool)
    assert [p.parent for p in props] == [1, 1, 1, 2, 2, 2]
    assert all(p.generation == 1 for p in props)
    assert round_.size == 6 and round_.strength == pytest.approx(0.0 if mode == "seed_offset" else 0.6)
    assert all(p.recipe.parent == pool.get(p.parent).recipe for p in props)
    seeds = [p.recipe.seed for p in props] + [c.seed for c in pool.candidates]
    assert len(set(seeds)) == len(seeds)
    if mode == "seed_offset":
        elite = pool.get(1).seed
        assert [p.recipe.seed for p in props[:3]] == [elite + 1, elite + 2, elite + 3]


def test_seed_offset_skips_seeds_already_in_the_pool():
    pool = Pool(setup=None, k_global=3)
    recipes = [NoiseRecipe(10), NoiseRecipe(11), NoiseRecipe(13)]
    from eacps.search.strategy import Proposal

    pool = pool.add(to_candidates(pool, [Proposal(r, 0, None) for r in recipes], potential=[3.0, 1.0, 0.0]))
    pool = pool.with_elites((0,))
    props, _ = LocalRefinement(3, "seed_offset", 1.0, 1.0, rng()).ask(pool)
    assert [p.recipe.seed for p in props] == [12, 14, 15]


def test_full_search_budget_and_annealing():
    search = EACPS(k_global=8, m=3, k_local=4, seed=1, generations=2, strength=0.6, anneal=0.5)
    assert search.budget() == 8 + 2 * 3 * 4
    batches = []
    while True:
        props = search.ask()
        if not props:
            break
        batches.append(len(props))
        # a fake potential that is a pure function of the recipe: its seed
        search.tell([(p.recipe.seed % 1000) / 100 for p in props])
    assert batches == [8, 12, 12]
    assert len(search.pool) == 32
    b = search.pool.budget()
    assert b["N"] == 32 and b["formula"] == "8 + 3*4 + 3*4 = 32"
    assert [r["strength"] for r in b["rounds"]] == pytest.approx([0.6, 0.3])
    gen2 = [c for c in search.pool.candidates if c.generation == 2]
    assert all(search.pool.get(c.parent).elite for c in gen2)
    assert all(c.recipe.strength == pytest.approx(0.3) for c in gen2)
    best = search.best()
    assert best.potential == max(c.potential for c in search.pool.candidates)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(k_global=0), "K_global"),
        (dict(m=0), "M = 0"),
        (dict(m=9), "M = 9"),
        (dict(k_local=0), "K_local"),
        (dict(strength=0.0), "strength"),
        (dict(strength=1.2), "strength"),
        (dict(anneal=0.0), "anneal"),
        (dict(mode="nearby"), "mode"),
    ],
)
def test_bad_search_parameters_are_refused(kwargs, match):
    args = dict(k_global=8, m=3, k_local=4, seed=1)
    args.update(kwargs)
    with pytest.raises(SearchError, match=match):
        EACPS(**args)


def test_m_larger_than_pool_is_refused():
    with pytest.raises(SearchError, match="only 3 candidates"):
        select_elites(pool_with([1.0, 2.0, 3.0]), 4)


def test_elites_from_a_different_pool_are_refused():
    a = pool_with([1.0, 2.0, 3.0])
    b = pool_with([1.0, 2.0, 3.0])
    b_marked = b.with_elites(select_elites(b, 1))
    transplanted = a.__class__(**{**a.__dict__, "selection": b_marked.selection})
    with pytest.raises(SearchError, match="another search"):
        LocalRefinement(2, "slerp", 0.5, 0.5, rng()).ask(transplanted)
    with pytest.raises(SearchError, match="no elites"):
        LocalRefinement(2, "slerp", 0.5, 0.5, rng()).ask(a)


def scored_pool():
    pool = pool_with([0.0, 0.0, 0.0])
    tech = VerifierInfo("technical-v1", "technical", ("sharpness", "exposure"), "ctx")
    pool = pool.with_scores(tech, {i: {"sharpness": float(i), "exposure": 10.0 - i} for i in range(3)},
                            {i: 0.01 for i in range(3)})
    return pool


def test_potential_is_the_weighted_sum_of_named_scores():
    pool = scored_pool()
    u = compute_potentials(pool, parse_weights("sharpness=2.0\nexposure: 0.5"))
    assert u == {0: 5.0, 1: 6.5, 2: 8.0}
    assert parse_weights("sharpness: 1, exposure=0.5") == {"sharpness": 1.0, "exposure": 0.5}


@pytest.mark.parametrize(
    "text, match",
    [
        ("sharpness=0\nexposure=0", "all are zero"),
        ("", "none given"),
        ("sharpness", "cannot read"),
        ("sharpness=abc", "not a number"),
        ("sharpness=-1", ">= 0"),
        ("sharpness=inf", ">= 0"),
        ("sharpness=1, sharpness=2", "twice"),
    ],
)
def test_bad_weights_are_refused(text, match):
    with pytest.raises(SearchError, match=match):
        parse_weights(text)


def test_weights_naming_a_missing_score_are_refused():
    with pytest.raises(SearchError, match=r"lacks.*available: .*exposure"):
        compute_potentials(scored_pool(), {"realism": 1.0})


def test_unscored_candidates_are_refused():
    pool = scored_pool()
    pool = pool.add([Candidate(id=3, recipe=NoiseRecipe(99), generation=1, parent=0)])
    with pytest.raises(SearchError, match=r"missing for candidates \[3\]"):
        compute_potentials(pool, {"sharpness": 1.0})


def test_shared_aspect_names_must_be_qualified():
    pool = scored_pool()
    other = VerifierInfo("sharpnet-v2", "sharpnet", ("sharpness",), "ctx")
    pool = pool.with_scores(other, {i: {"sharpness": 1.0} for i in range(3)}, {i: 0.0 for i in range(3)})
    names = pool.score_names()
    assert "sharpness" not in names
    assert names["technical.sharpness"] == ("technical-v1", "sharpness")
    assert names["sharpnet.sharpness"] == ("sharpnet-v2", "sharpness")
    assert names["exposure"] == ("technical-v1", "exposure")
    with pytest.raises(SearchError, match="technical.sharpness"):
        compute_potentials(pool, {"sharpness": 1.0})
    u = compute_potentials(pool, parse_weights("technical.sharpness=1, sharpnet.sharpness=1"))
    assert u == {0: 1.0, 1: 2.0, 2: 3.0}
    # two verifiers of one kind: numbered by the order they joined
    third = VerifierInfo("sharpnet-v3", "sharpnet", ("sharpness",), "ctx")
    pool = pool.with_scores(third, {i: {"sharpness": 2.0} for i in range(3)}, {i: 0.0 for i in range(3)})
    names = pool.score_names()
    assert names["sharpnet#1.sharpness"] == ("sharpnet-v2", "sharpness")
    assert names["sharpnet#2.sharpness"] == ("sharpnet-v3", "sharpness")
    assert "sharpnet.sharpness" not in names
    assert compute_potentials(pool, parse_weights("sharpnet#2.sharpness=1"))[0] == 2.0


def test_pool_is_immutable_and_keeps_its_id():
    pool = scored_pool()
    marked = pool.with_elites((2,))
    assert marked.pool_id == pool.pool_id
    assert not any(c.elite for c in pool.candidates)
    assert [c.elite for c in marked.candidates] == [False, False, True]
    with pytest.raises(AttributeError):
        marked.k_global = 3


def test_stale_elites_are_refused():
    pool = pool_with([1.0, 3.0, 2.0])
    pool = pool.with_elites(select_elites(pool, 1))
    refine = LocalRefinement(2, "slerp", 0.5, 0.5, rng())
    props, round_ = refine.ask(pool)
    grown = pool.add(to_candidates(pool, props, potential=[0.0, 0.0]), round_)
    with pytest.raises(SearchError, match="run EliteSelect again"):
        refine.ask(grown)


def test_driver_proposes_what_the_node_stages_propose():
    """The nodes run GlobalExploration / LocalRefinement with stage_rng(seed, round); the driver
    must propose the same seeds, or a search run through the driver would not match the graph."""
    from eacps.search.strategy import stage_rng

    search = EACPS(k_global=6, m=2, k_local=3, seed=77, generations=2, strength=0.5, anneal=0.5)
    first = search.ask()
    assert [p.recipe for p in first] == [p.recipe for p in GlobalExploration(6, 77, stage_rng(77, 0)).ask()]
    search.tell([float(i % 4) for i in range(len(first))])
    second = search.ask()
    expected, _ = LocalRefinement(3, "slerp", 0.5, 0.5, stage_rng(77, 1)).ask(search.pool)
    assert [p.recipe for p in second] == [p.recipe for p in expected]


def test_seed_offset_ignores_strength_and_records_no_radius():
    pool = Pool(setup=None, k_global=2).add(
        to_candidates(Pool(setup=None, k_global=2), GlobalExploration(2, 9, rng()).ask(), potential=[1.0, 2.0])
    )
    pool = pool.with_elites(select_elites(pool, 1))
    props, round_ = LocalRefinement(2, "seed_offset", 0.7, 0.5, rng()).ask(pool)
    assert round_.strength == 0.0
    assert [p.recipe.seed for p in props] == [pool.get(1).seed + 1, pool.get(1).seed + 2]


def test_weights_text_skips_comment_and_blank_lines():
    text = "# the EACPS edit preset\n\nsharpness = 2.0\n   \n  # exposure=9, never read\nexposure: 0.5,\n"
    assert parse_weights(text) == {"sharpness": 2.0, "exposure": 0.5}
    with pytest.raises(SearchError, match="none given"):
        parse_weights("# only a comment\n\n")


def pool_of_seeds(seeds, potentials=None) -> Pool:
    from eacps.search.strategy import Proposal

    pool = Pool(setup=None, k_global=len(seeds))
    props = [Proposal(NoiseRecipe(s), 0, None) for s in seeds]
    return pool.add(to_candidates(pool, props, potential=list(potentials or [1.0] * len(seeds))))


def all_seeds_distinct(pool, props):
    seeds = [c.seed for c in pool.candidates] + [p.recipe.seed for p in props]
    return len(seeds) == len(set(seeds))


def test_seed_offset_children_of_neighbouring_elites_never_share_a_seed():
    # elites 100, 101, 102 and 104 are each other's seed + j: their children must skip each other
    pool = pool_of_seeds([100, 101, 102, 104], [4.0, 3.0, 2.0, 1.0])
    pool = pool.with_elites((0, 1, 2, 3))
    props, _ = LocalRefinement(3, "seed_offset", 1.0, 1.0, rng()).ask(pool)
    assert [p.recipe.seed for p in props] == [103, 105, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115]
    assert all_seeds_distinct(pool, props)


def test_seed_offset_wraps_at_the_largest_seed():
    from eacps.search.noise import SEED_MAX

    pool = pool_of_seeds([SEED_MAX - 1, 0]).with_elites((0,))
    props, _ = LocalRefinement(3, "seed_offset", 1.0, 1.0, rng()).ask(pool)
    assert [p.recipe.seed for p in props] == [SEED_MAX, 1, 2]


@pytest.mark.parametrize("mode", ["slerp", "sphere"])
def test_fresh_child_seeds_skip_seeds_the_pool_uses(mode):
    """The child seeds come from the stage RNG; put its first draws into the pool so they must be skipped."""
    from eacps.search.strategy import CHILD_SEED_RANGE

    draws = [int(s) for s in rng(5).integers(0, CHILD_SEED_RANGE, size=6)]
    pool = pool_of_seeds([draws[0], draws[2], 7], [3.0, 2.0, 1.0]).with_elites((0, 1))
    props, _ = LocalRefinement(2, mode, 0.5, 1.0, rng(5)).ask(pool)
    assert [p.recipe.seed for p in props] == [draws[1], draws[3], draws[4], draws[5]]
    assert all_seeds_distinct(pool, props)


def test_global_seeds_skip_the_users_seed_when_the_rng_draws_it():
    from eacps.search.strategy import CHILD_SEED_RANGE

    draws = [int(s) for s in rng(9).integers(0, CHILD_SEED_RANGE, size=3)]
    props = GlobalExploration(3, draws[0], rng(9)).ask()
    assert [p.recipe.seed for p in props] == [draws[0], draws[1], draws[2]]


@pytest.mark.parametrize("mode", ["slerp", "sphere", "seed_offset"])
def test_no_two_candidates_of_a_search_share_a_seed(mode):
    # potentials that favour neighbouring seeds, so seed_offset elites become each other's neighbours
    for seed in (0, 1, 2**40):
        search = EACPS(k_global=6, m=3, k_local=4, seed=seed, generations=3, mode=mode, strength=0.5, anneal=0.7)
        while props := search.ask():
            search.tell([float(p.recipe.seed % 97) for p in props])
        seeds = [c.seed for c in search.pool.candidates]
        assert len(seeds) == 6 + 3 * 3 * 4 and len(set(seeds)) == len(seeds), (mode, seed)


def test_a_weight_line_that_cannot_be_read_is_quoted_with_an_example():
    with pytest.raises(SearchError) as err:
        parse_weights("sharpness=1\nexposure 0.5")
    assert str(err.value) == ("weights: cannot read 'exposure 0.5'; write name=weight pairs, one per line or "
                              "separated by commas, e.g. 'sharpness=1.0, exposure=0.5'")
