"""Compute options in the search nodes (real in-process ComfyUI, tiny models): counted NFE, adaptive
stopping, NFE budgets and screening (chain and preview), reported per candidate."""

from __future__ import annotations

import json

import pytest
import torch

from harness.inprocess import PromptInvalid
from host.graphs import best_of_n_node, capture, one_node_prompt, search_node, two_stage_prompt

pytestmark = pytest.mark.host

STEPS = 4  # sampler_settings' default


def _by_seed(report: dict) -> dict:
    return {c["seed"]: c for c in report["candidates"]}


@pytest.fixture(scope="module")
def best_of_8(comfy, captured):
    """One prompt: best-of-8 plain, and the same 8 seeds under each compute option."""
    variants = {
        "plain": {},
        "chain": {"prune_steps": "2", "prune_keep": 0.5},
        "preview": {"prune_steps": "2", "prune_keep": 0.5, "prune_kind": "preview"},
        "stop": {"stop_at_potential": 0.01, "max_sub_batch": 2},
        "budget": {"max_nfe": 10, "max_sub_batch": 2},
        "plateau": {"plateau": 2, "max_sub_batch": 2},
    }
    p = one_node_prompt(best_of_n_node(n=8, seed=2), key="plain", captures=False)
    for key, options in variants.items():
        sub_batch = options.pop("max_sub_batch", 8)
        node = best_of_n_node(n=8, seed=2, max_sub_batch=sub_batch)
        node["inputs"].update(options)
        p[key] = node
        p[f"cap_{key}"] = capture([key, 5], key)
    comfy.run(p)
    return {key: json.loads(captured[key]) for key in variants}


def test_best_of_n_screens_by_default_at_a_quarter_and_half_of_the_steps(comfy, captured):
    # Left out (API prompt) or given as the widget's default, the screening is '25%, 50%': with 20
    # steps, rungs 5 and 10. Hand-computed for n = 8, keep 0.5: 4 pruned at step 5, 2 at step 10,
    # 2 finished; sampler steps 8 * 5 + 4 * 5 + 2 * 10 = 80 (a plain best-of-8: 160).
    p = one_node_prompt(best_of_n_node(n=8, seed=3, steps=20, prune_steps=None), key="default", captures=False)
    p["explicit"] = best_of_n_node(n=8, seed=3, steps=20, prune_steps="5, 10")
    p["plain"] = best_of_n_node(n=8, seed=3, steps=20)
    for key in ("default", "explicit", "plain"):
        p[f"cap_{key}"] = capture([key, 5], key)
    comfy.run(p)
    default, explicit, plain = (json.loads(captured[k]) for k in ("default", "explicit", "plain"))
    fates = [c["fate"].split(" (")[0] for c in default["candidates"]]
    assert sorted(fates) == ["finished"] * 2 + ["pruned at step 10"] * 2 + ["pruned at step 5"] * 4
    assert default["compute"]["steps"] == 80 and plain["compute"]["steps"] == 160
    assert default["winner_seed"] == explicit["winner_seed"]
    assert [c["fate"] for c in default["candidates"]] == [c["fate"] for c in explicit["candidates"]]
    assert {c["fate"] for c in plain["candidates"]} == {"finished"}


def test_plain_best_of_n_counts_its_model_evaluations(best_of_8):
    r = best_of_8["plain"]
    c = r["compute"]
    # euler: one denoiser call per step for the whole sub-batch, cond and uncond in that one call
    assert (c["calls"], c["nfe"], c["passes"], c["steps"]) == (STEPS, 8 * STEPS, 2 * 8 * STEPS, 8 * STEPS)
    assert c["cfg_batched"] is True and c["full_nfe"] == STEPS and c["full_samples"] == 8
    assert (c["decodes"], c["verifier_calls"], c["verifier_images"]) == (8, 1, 8)
    assert all(v >= 0 for v in c["seconds"].values())
    assert r["budget"]["unspent"] == 0 and r["budget"]["stopped"] is None
    assert {x["fate"] for x in r["candidates"]} == {"finished"}
    assert {x["nfe"] for x in r["candidates"]} == {STEPS}


def test_chain_pruning_finishes_the_better_half_exactly_as_uninterrupted_runs(best_of_8):
    plain, r = _by_seed(best_of_8["plain"]), best_of_8["chain"]
    finished = [x for x in r["candidates"] if x["fate"] == "finished"]
    pruned = [x for x in r["candidates"] if x["fate"] != "finished"]
    assert len(finished) == 4 and len(pruned) == 4
    assert {x["seed"] for x in r["candidates"]} == set(plain)
    for x in finished:  # continued from the saved step-2 state: the same image as a full run
        assert x["potential"] == pytest.approx(plain[x["seed"]]["potential"], abs=1e-4)
        assert x["nfe"] == STEPS and [s["kept"] for s in x["screens"]] == [True]
    for x in pruned:
        assert x["fate"].startswith("pruned at step 2 (x0 prediction potential")
        assert x["potential"] is None and x["nfe"] == 2
    kept = min(x["screens"][0]["preview_potential"] for x in finished)
    assert kept >= max(x["screens"][0]["preview_potential"] for x in pruned)
    assert r["winner"] in [x["id"] for x in finished]
    c = r["compute"]
    assert c["nfe"] == 8 * 2 + 4 * (STEPS - 2) and c["decodes"] == 8 + 4
    assert r["budget"]["pruned"] == 4 and r["budget"]["finished"] == 4


def test_preview_screening_reruns_the_kept_ones_from_their_noise(best_of_8):
    plain, r = _by_seed(best_of_8["plain"]), best_of_8["preview"]
    finished = [x for x in r["candidates"] if x["fate"] == "finished"]
    assert len(finished) == 4
    for x in finished:
        assert x["potential"] == pytest.approx(plain[x["seed"]]["potential"], abs=1e-4)
        assert x["nfe"] == 2 + STEPS  # its preview run and its full run
    assert r["compute"]["nfe"] == 8 * 2 + 4 * STEPS
    assert all("preview run potential" in x["fate"] for x in r["candidates"] if x["fate"] != "finished")


def test_target_stop_ends_after_the_first_sub_batch_and_reports_the_rest_unspent(best_of_8):
    plain, r = best_of_8["plain"], best_of_8["stop"]
    assert [x["seed"] for x in r["candidates"]] == [x["seed"] for x in plain["candidates"][:2]]
    assert r["budget"]["unspent"] == 6 and "target potential" in r["budget"]["stopped"]
    assert r["compute"]["nfe"] == 2 * STEPS


def test_an_nfe_budget_starts_no_sub_batch_that_would_exceed_it(best_of_8):
    r = best_of_8["budget"]
    assert len(r["candidates"]) == 2 and r["compute"]["nfe"] == 8 <= 10
    assert r["budget"]["unspent"] == 6
    assert r["budget"]["stopped"] == "NFE budget 10 reached (spent 8; the next sub-batch would exceed it)"


def test_plateau_stops_when_the_best_stops_improving(best_of_8):
    potentials = [x["potential"] for x in best_of_8["plain"]["candidates"]]
    expected = 8
    for end in (2, 4, 6):  # checked between sub-batches of 2, by hand
        seen = potentials[:end]
        if end - 1 - seen.index(max(seen)) >= 2:
            expected = end
            break
    r = best_of_8["plateau"]
    assert len(r["candidates"]) == expected and r["budget"]["unspent"] == 8 - expected
    assert (r["budget"]["stopped"] is None) == (expected == 8)


def test_one_node_search_with_pruning_equals_the_five_node_graph_with_a_screen_verifier(comfy, captured):
    settings = dict(seed=3, k_global=6, m=2, k_local=4, mode="slerp", strength=0.6, anneal=0.5)
    options = {"prune_steps": "2", "prune_keep": 0.5}
    p = two_stage_prompt(**settings)
    screen = {**options, "screen_verifier": ["verifier", 0], "screen_weights": p["pot1"]["inputs"]["weights"],
              "screen_prompt": "a red apple"}
    p["global"]["inputs"].update(screen)
    p["local"]["inputs"].update(screen)
    one = search_node(**settings)
    one["inputs"].update(options)
    p.update({k: v for k, v in one_node_prompt(one).items() if k not in p})
    comfy.run(p)
    five, one = json.loads(captured["report"]), json.loads(captured["one_report"])
    assert one["winner_seed"] == five["winner_seed"]
    assert [x["recipe"] for x in one["candidates"]] == [x["recipe"] for x in five["candidates"]]
    assert [x["fate"] for x in one["candidates"]] == [x["fate"] for x in five["candidates"]]
    assert one["budget"]["pruned"] == 3 + 4 and one["budget"]["finished"] == 3 + 4
    # elites come only from finished candidates
    finished = {x["id"] for x in one["candidates"] if x["fate"] == "finished"}
    assert set(one["budget"]["rounds"][0]["elites"]) <= finished
    assert one["compute"]["nfe"] == five["compute"]["nfe"] == (6 + 8) * 2 + (3 + 4) * (STEPS - 2)


def test_left_out_screen_weights_weigh_every_aspect_of_the_screen_verifier_one(comfy, captured):
    # The technical verifier's aspects are sharpness and exposure: weights left out of Seed Search
    # Global and Local Seed Refine (an API prompt, or an old workflow) screen as "sharpness=1, exposure=1".
    def screened(weights):
        p = two_stage_prompt(seed=5, k_global=6, m=2, k_local=4)
        for node in ("global", "local"):
            p[node]["inputs"].update(prune_steps="2", prune_keep=0.5, screen_verifier=["verifier", 0],
                                     screen_prompt="a red apple")
            if weights is not None:
                p[node]["inputs"]["screen_weights"] = weights
        comfy.run(p)
        return json.loads(captured["report"])

    left_out, written = screened(None), screened("sharpness=1\nexposure=1")
    assert [c["fate"] for c in left_out["candidates"]] == [c["fate"] for c in written["candidates"]]
    assert [c["recipe"] for c in left_out["candidates"]] == [c["recipe"] for c in written["candidates"]]
    assert left_out["budget"]["pruned"] == 3 + 4  # screening ran in both stages
    assert left_out["winner_seed"] == written["winner_seed"]


def test_the_screening_inputs_keep_their_names(comfy):
    """The socket and widget names saved workflows and API prompts use, on every node that screens."""
    for node in ("EACPS_SeedSearchGlobal", "EACPS_LocalSeedRefine", "EACPS_Search", "EACPS_BestOfN"):
        optional = comfy.nodes.NODE_CLASS_MAPPINGS[node].GET_NODE_INFO_V1()["input"]["optional"]
        assert {"prune_steps", "prune_keep", "prune_kind", "stop_at_potential", "plateau", "max_nfe"} <= set(optional)
        if node in ("EACPS_SeedSearchGlobal", "EACPS_LocalSeedRefine"):
            assert {"screen_verifier", "screen_weights", "screen_prompt"} <= set(optional), node


def test_options_that_cannot_work_are_refused_before_sampling(comfy):
    bad_rung = one_node_prompt(best_of_n_node(n=4))
    bad_rung["one"]["inputs"]["prune_steps"] = "4"
    with pytest.raises(PromptInvalid, match="below the 4 sampling steps"):
        comfy.run(bad_rung)
    too_few = one_node_prompt(search_node(k_global=4, m=3))
    too_few["one"]["inputs"].update(prune_steps="2", prune_keep=0.5)
    with pytest.raises(PromptInvalid, match="fewer than M = 3"):
        comfy.run(too_few)
    no_screen = two_stage_prompt(captures=False)
    no_screen["global"]["inputs"]["prune_steps"] = "2"
    result = comfy.run(no_screen, expect_success=False)
    assert "screen_verifier" in result.error()


def test_with_steps_linked_the_options_that_do_not_need_steps_are_still_checked(comfy):
    from eacps.nodes.compute import check_compute
    from eacps.search.pool import SearchError

    with pytest.raises(SearchError, match="stop_at_potential = -1.0"):
        check_compute(None, {"stop_at_potential": -1.0, "prune_steps": None, "prune_keep": 0.5})
    with pytest.raises(SearchError, match="prune_kind = 'tree'"):
        check_compute(None, {"prune_kind": "tree"})
    assert check_compute(None, {"prune_steps": "40"}) is None  # a rung is checked against steps once they are known
    with pytest.raises(SearchError, match="below the 8 sampling steps"):
        check_compute(8, {"prune_steps": "40"})


@pytest.mark.parametrize("rungs, max_nfe, spent", [
    # By hand, 8 candidates of 4 steps, keep 0.5. Rung at step 2: 8 * 2 = 16 NFE; the 4 survivors' last
    # 2 steps would reach 24 > 20: stop with 16 spent. Rungs at 1 and 2: 8 * 1 = 8; the next rung
    # (4 * 1) would reach 12 > 10: stop with 8 spent, between two rungs.
    ("2", 20, 16),
    ("1, 2", 10, 8),
])
def test_an_nfe_budget_that_runs_out_while_screening_says_so(comfy, rungs, max_nfe, spent):
    p = one_node_prompt(best_of_n_node(n=8, seed=4, prune_steps=rungs))
    p["one"]["inputs"].update(prune_keep=0.5, max_nfe=max_nfe)
    result = comfy.run(p, expect_success=False)
    assert (f"NFE budget {max_nfe} reached (spent {spent}; the next sub-batch would exceed it), with 0 candidates "
            "finished: too few to choose 1. Raise max_nfe, or screen fewer candidates") in result.error(), result.error()
    assert "candidates sampled before this error are kept" in result.error()


@pytest.mark.parametrize("kind", ["chain", "preview"])
def test_a_pruned_candidate_shows_the_picture_it_was_judged_on(comfy, captured, kind):
    """Chain screening judges the x0 prediction decoded at the rung; preview screening a separate run
    of rung-many steps, decoded. A pruned candidate keeps that picture: here recomputed for its
    recipe by the runner alone (no stage), by hand."""
    from eacps.nodes.runner import LocalRunner
    from eacps.search.stage import Task

    p = two_stage_prompt(seed=9, k_global=6, m=2, k_local=2)
    p["global"]["inputs"].update(prune_steps="2", prune_keep=0.5, prune_kind=kind, screen_verifier=["verifier", 0],
                                 screen_prompt="a red apple")
    p["cap_global"] = capture(["global", 0], "screened_pool")
    comfy.run(p)
    pool = captured["screened_pool"]
    pruned = [c for c in pool.candidates if c.pruned]
    assert len(pruned) == 3
    runner = LocalRunner(pool.setup)
    steps = 2 if kind == "preview" else STEPS  # a preview is its own 2-step run; a chain stops at step 2 of 4
    outcomes, _ = runner.run([Task(c.recipe, 0, 2, steps, decode="x0" if kind == "chain" else "final")
                              for c in pruned])
    for c, o in zip(pruned, outcomes, strict=True):
        torch.testing.assert_close(c.image, o.image, atol=1e-4, rtol=0)


def test_continued_chains_count_their_screening_steps_in_every_sub_batch(comfy, captured):
    # By hand: 6 candidates screened at step 2 of 4 (6 * 2 = 12 NFE); 3 survivors finish their last 2 steps
    # in sub-batches of 2 and 1 (3 * 2 = 6): 18 in all; each finished candidate took part in 4, each
    # pruned one in 2.
    p = one_node_prompt(best_of_n_node(n=6, seed=6, prune_steps="2", max_sub_batch=2))
    p["one"]["inputs"]["prune_keep"] = 0.5
    comfy.run(p)
    r = json.loads(captured["one_report"])
    assert r["compute"]["nfe"] == 18
    assert sorted(c["nfe"] for c in r["candidates"]) == [2, 2, 2, 4, 4, 4]
