"""The EACPS nodes inside a real in-process ComfyUI on the tiny test models."""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import sys

import pytest
import torch

from harness.inprocess import PromptInvalid
from host.graphs import (
    base_nodes,
    capture,
    custom_advanced_nodes,
    global_node,
    ksampler_node,
    two_stage_prompt,
)

pytestmark = pytest.mark.host

ATOL = 1e-4


def selection_nodes(prefix: str, source: list, m: int, weights: str = "sharpness=1.0\nexposure=1.0") -> dict:
    return {
        "verifier": {"class_type": "EACPS_LoadTechnicalVerifier", "inputs": {"size": 64}},
        f"{prefix}_score": {"class_type": "EACPS_VerifierScore",
                            "inputs": {"candidates": source, "verifier": ["verifier", 0], "prompt": "x"}},
        f"{prefix}_pot": {"class_type": "EACPS_WeightedPotential",
                          "inputs": {"candidates": [f"{prefix}_score", 0], "weights": weights}},
        f"{prefix}_elite": {"class_type": "EACPS_EliteSelect", "inputs": {"candidates": [f"{prefix}_pot", 0], "m": m}},
    }


def global_only_prompt(seed=1, sampler_name="euler", max_sub_batch=8, k_global=8, m=1):
    p = base_nodes()
    p["global"] = global_node(k_global=k_global, max_sub_batch=max_sub_batch, seed=seed, sampler_name=sampler_name)
    p.update(selection_nodes("s", ["global", 0], m))
    p["cap_pool"] = capture(["s_elite", 0], "pool")
    p["cap_latent"] = capture(["s_elite", 2], "latent")
    p["cap_seed"] = capture(["s_elite", 4], "seed")
    # the winner's seed, linked into a stock KSampler in the same prompt; and the user's own seed
    p["ks_winner"] = ksampler_node(seed=["s_elite", 4], sampler_name=sampler_name)
    p["ks_user"] = ksampler_node(seed=seed, sampler_name=sampler_name)
    p["cap_ks_winner"] = capture(["ks_winner", 0], "ks_winner")
    p["cap_ks_user"] = capture(["ks_user", 0], "ks_user")
    return p


def test_plain_seed_noise_equals_comfy_prepare_noise(comfy):
    prepare_noise = importlib.import_module("comfy.sample").prepare_noise
    from eacps.search.noise import NoiseRecipe, make_noise

    for shape in [(1, 4, 8, 8), (1, 4, 9, 7), (1, 16, 16, 16), (1, 16, 1, 8, 8), (1, 3, 5, 5)]:
        for seed in (0, 1, 123456789, 2**63 + 5):
            expected = prepare_noise(torch.zeros(shape), seed)
            assert torch.equal(make_noise(NoiseRecipe(seed), shape), expected), (shape, seed)


@pytest.mark.parametrize("sampler_name", ["euler", "euler_ancestral"])
def test_winner_seed_in_stock_ksampler_gives_the_searched_latent(comfy, captured, sampler_name):
    comfy.run(global_only_prompt(seed=5, sampler_name=sampler_name))
    pool = captured["pool"]
    assert captured["seed"] == pool.get(pool.selection.ids[0]).seed
    assert captured["latent"]["samples"].shape == (1, 4, 8, 8)
    torch.testing.assert_close(captured["ks_winner"]["samples"], captured["latent"]["samples"], atol=ATOL, rtol=0)
    # candidate 0 is the user's own seed: the plain KSampler result is always in the pool
    assert pool.get(0).seed == 5
    torch.testing.assert_close(captured["ks_user"]["samples"], pool.get(0).latent, atol=ATOL, rtol=0)
    # both batch: euler needs nothing, euler_ancestral gets one noise generator per candidate
    assert {dict(c.timings)["sub_batch"] for c in pool.candidates} == {8.0}


def test_noise_output_in_sampler_custom_advanced_reproduces_a_slerp_child(comfy, captured):
    p = two_stage_prompt(seed=1)
    p.update(custom_advanced_nodes(["elite2", 3]))
    p["cap_sca"] = capture(["sca", 0], "sca")
    comfy.run(p)
    pool = captured["pool"]
    winner = pool.get(pool.selection.ids[0])
    assert winner.recipe.mode == "slerp" and winner.generation == 1, (
        "this test needs a slerp child to win; with seed=1 on the tiny model candidate 9 does. "
        f"The winner is now {winner}: pick another seed for which a child wins"
    )
    assert captured["noise"].seed == winner.seed
    torch.testing.assert_close(captured["sca"]["samples"], winner.latent, atol=ATOL, rtol=0)
    torch.testing.assert_close(captured["sca"]["samples"], captured["latent"]["samples"], atol=ATOL, rtol=0)


def test_candidates_do_not_depend_on_the_sub_batch_size(comfy, captured):
    pools = {}
    for sub_batch in (1, 3, 8):
        comfy.run(two_stage_prompt(seed=3, max_sub_batch=sub_batch))
        pools[sub_batch] = captured["pool"]
    ref = pools[1]
    assert len(ref) == 20
    for sub_batch in (3, 8):
        other = pools[sub_batch]
        assert [c.recipe for c in other.candidates] == [c.recipe for c in ref.candidates]
        for a, b in zip(ref.candidates, other.candidates, strict=True):
            torch.testing.assert_close(b.latent, a.latent, atol=ATOL, rtol=0)
            torch.testing.assert_close(b.image, a.image, atol=1e-3, rtol=0)
        assert {dict(c.timings)["sub_batch"] for c in other.candidates[:8]} == {float(min(sub_batch, 8)), float(8 % sub_batch or sub_batch)}


def check_two_stage_report(report: dict, pool=None):
    assert report["budget"]["N"] == 20 and report["budget"]["formula"] == "8 + 3*4 = 20"
    assert report["budget"]["K_global"] == 8 and report["budget"]["generations"] == 1
    cands = report["candidates"]
    assert [c["id"] for c in cands] == list(range(20))
    assert all(c["generation"] == 0 and c["parent"] is None and c["recipe"]["mode"] == "seed" for c in cands[:8])
    elites1 = report["budget"]["rounds"][0]["elites"]
    assert len(elites1) == 3 and all(0 <= e < 8 for e in elites1)
    children = cands[8:]
    assert all(c["generation"] == 1 and c["recipe"]["mode"] == "slerp" for c in children)
    assert [c["parent"] for c in children] == [e for e in elites1 for _ in range(4)]
    for c in children:
        assert c["recipe"]["parent"] == cands[c["parent"]]["recipe"]
        assert c["recipe"]["strength"] == pytest.approx(0.6)
    assert all(set(c["scores"]) == {"sharpness", "exposure"} for c in cands)
    assert all(c["potential"] == pytest.approx(c["scores"]["sharpness"] + c["scores"]["exposure"]) for c in cands)
    best = max(cands, key=lambda c: (c["potential"], -c["id"]))
    assert report["winner"] == best["id"] and report["elites"] == [best["id"]]
    assert [c["elite"] for c in cands].count(True) == 1
    assert all({"sample", "decode"} <= set(c["timings"]) for c in cands)


def test_full_two_stage_graph_in_process(comfy, captured):
    comfy_utils = importlib.import_module("comfy.utils")
    progress = []
    comfy_utils.set_progress_bar_global_hook(lambda v, t, preview, node_id=None: progress.append((v, t)))
    try:
        comfy.run(two_stage_prompt(seed=11))
    finally:
        comfy_utils.set_progress_bar_global_hook(None)
    report = json.loads(captured["report"])
    check_two_stage_report(report)
    # one bar per sampling node over candidates x steps (8 x 4, then 12 x 4), monotone
    totals = sorted({t for _, t in progress})
    assert totals == [8, 12, 32, 48]  # each VerifierScore's own bar (8, 12 candidates), then 8 x 4 and 12 x 4 steps
    for total in totals:
        values = [v for v, t in progress if t == total]
        assert values == sorted(values) and values[-1] == total
    assert len(report["candidates"]) == len(captured["pool"])


def test_latent_batch_larger_than_one_is_refused(comfy):
    p = base_nodes(batch_size=2)
    p["global"] = global_node(k_global=2)
    p["cap"] = capture(["global", 0], "never")
    result = comfy.run(p, expect_success=False)
    assert not result.success
    assert "batch of 2" in result.error() and "Use a batch of 1" in result.error()


@pytest.mark.parametrize(
    "node, field, value, match",
    [
        ("global", "k_global", 0, "k_global = 0"),
        ("global", "max_sub_batch", 0, "max_sub_batch = 0"),
        ("elite1", "m", 0, "m = 0"),
        ("local", "k_local", 0, "k_local = 0"),
        ("local", "strength", 0.0, "strength = 0.0"),
        ("local", "strength", 1.5, "strength = 1.5"),
        ("local", "anneal", 0.0, "anneal = 0.0"),
        ("pot1", "weights", "sharpness=0, exposure=0", "all are zero"),
        ("pot1", "weights", "sharpness 1", "cannot read"),
    ],
)
def test_bad_widget_values_are_refused_before_running(comfy, node, field, value, match):
    p = two_stage_prompt()
    p[node]["inputs"][field] = value
    with pytest.raises(PromptInvalid) as info:
        comfy.run(p)
    assert match in json.dumps(info.value.details)


@pytest.mark.parametrize(
    "node, field, value, match",
    [
        ("elite1", "m", 9, "M = 9 elites, but the pool has only 8 candidates"),
        ("pot1", "weights", "realism=4.0", "lacks"),
    ],
)
def test_bad_pool_dependent_inputs_fail_before_the_next_sampling(comfy, node, field, value, match):
    p = two_stage_prompt()
    p[node]["inputs"][field] = value
    result = comfy.run(p, expect_success=False)
    assert not result.success and match in result.error(), result.error()
    error = next(d for kind, d in result.status_messages if kind == "execution_error")
    assert error["node_id"] == node
    assert "local" not in error["executed"]  # the refinement never sampled


def node_class(comfy, node_id):
    cls = comfy.nodes.NODE_CLASS_MAPPINGS[node_id]
    return cls


def test_verifier_returning_nan_marks_every_candidate_invalid(comfy, captured):
    comfy.run(global_only_prompt(seed=2))
    pool = captured["pool"]
    # the verifier base class the node's own modules use (conftest aliases eacps.* to ComfyUI's import)
    score_node = node_class(comfy, "EACPS_VerifierScore")
    base = importlib.import_module("eacps.verifiers.base")
    assert sys.modules[score_node.__module__].protocol.VerifierError is base.VerifierError

    class NaNVerifier(base.Verifier):
        kind = "nan"
        aspects = ("broken",)

        @property
        def identity(self):
            return "nan-v1"

        def _score(self, images, prompt, reference):
            v = torch.full((images.shape[0],), float("nan"), dtype=torch.float64)
            return base.VerifierResult(scores={"broken": v}, raw={"broken": v})

    scored = score_node.execute(pool, NaNVerifier(), "x").args[0]
    # a non-finite score ranks the candidate out (issue 12) instead of failing the whole search
    assert [c.invalid for c in scored.candidates] == ["nan-v1 gave a non-finite 'broken' score (nan)"] * len(pool)
    with pytest.raises(importlib.import_module("eacps.search.pool").SearchError, match="every candidate is invalid"):
        scored.check_any_valid()


def test_elites_from_a_different_pool_are_refused_before_sampling(comfy, captured):
    comfy.run(global_only_prompt(seed=2, m=2))
    a = captured["pool"]
    comfy.run(global_only_prompt(seed=3, m=2))
    b = captured["pool"]
    transplanted = dataclasses.replace(a, selection=b.selection)
    refine = node_class(comfy, "EACPS_LocalSeedRefine")
    with pytest.raises(ValueError, match="another search"):
        refine.execute(transplanted, 2, "slerp", 0.5, 0.5)
    # the untouched pool refines fine, children around its own elites
    with torch.inference_mode():  # as ComfyUI's executor runs nodes
        grown = refine.execute(a, 2, "sphere", 0.5, 0.5).result[0]
    assert len(grown) == 12 and [c.parent for c in grown.candidates[8:]] == [i for i in a.selection.ids for _ in range(2)]


def test_scores_are_cached_per_verifier(comfy, captured):
    comfy.run(global_only_prompt(seed=4))
    pool = captured["pool"]
    score = node_class(comfy, "EACPS_VerifierScore")
    verifier = node_class(comfy, "EACPS_LoadTechnicalVerifier").execute(64).result[0]
    again = score.execute(pool, verifier, "x").result[0]
    assert again is pool  # same verifier identity and prompt: nothing to score
    other_prompt = score.execute(pool, verifier, "y").result[0]
    assert other_prompt is not pool and other_prompt.verifier(verifier.identity).context != pool.verifier(verifier.identity).context


def test_noise_output_reproduces_the_winner_with_an_ancestral_sampler(comfy, captured):
    """The winner was sampled in a sub-batch, with its own per-step noise."""
    p = two_stage_prompt(seed=6, sampler_name="euler_ancestral", max_sub_batch=8)
    p.update(custom_advanced_nodes(["elite2", 3], sampler_name="euler_ancestral"))
    p["cap_sca"] = capture(["sca", 0], "sca")
    comfy.run(p)
    pool = captured["pool"]
    assert {dict(c.timings)["sub_batch"] for c in pool.candidates} == {8.0, 4.0}  # 8 global, 3*4 children
    report = json.loads(captured["report"])
    assert report["setup"]["sub_batch_used"] == 8 and report["setup"]["one_at_a_time"] is None
    torch.testing.assert_close(captured["sca"]["samples"], captured["latent"]["samples"], atol=ATOL, rtol=0)


def test_a_second_refinement_generation_anneals_the_radius(comfy, captured):
    p = two_stage_prompt(seed=8, captures=False)
    p.update({
        "local2": {"class_type": "EACPS_LocalSeedRefine",
                   "inputs": {"candidates": ["elite2", 0], "k_local": 2, "mode": "sphere", "strength": 0.6,
                              "anneal": 0.5}},
        "score3": {"class_type": "EACPS_VerifierScore",
                   "inputs": {"candidates": ["local2", 0], "verifier": ["verifier", 0], "prompt": "a red apple"}},
        "pot3": {"class_type": "EACPS_WeightedPotential",
                 "inputs": {"candidates": ["score3", 0], "weights": "sharpness=1.0\nexposure=1.0"}},
        "elite3": {"class_type": "EACPS_EliteSelect", "inputs": {"candidates": ["pot3", 0], "m": 1}},
        "cap_report": capture(["elite3", 5], "report"),
    })
    comfy.run(p)
    report = json.loads(captured["report"])
    budget = report["budget"]
    assert budget["N"] == 22 and budget["formula"] == "8 + 3*4 + 1*2 = 22" and budget["generations"] == 2
    assert budget["rounds"][1]["strength"] == pytest.approx(0.3)
    gen2 = report["candidates"][20:]
    assert [c["generation"] for c in gen2] == [2, 2]
    assert all(c["parent"] == budget["rounds"][1]["elites"][0] for c in gen2)
    assert all(c["recipe"]["lam"] == pytest.approx(math.cos(0.3 * math.pi / 2)) for c in gen2)


def test_changing_the_final_weights_samples_nothing_again(comfy, captured):
    """DESIGN: scores are cached per candidate and ComfyUI caches node outputs, so changing a
    weight of the final potential re-runs only the potential and the selection."""
    first = two_stage_prompt(seed=31)
    comfy.run(first)
    second = two_stage_prompt(seed=31)
    second["pot2"]["inputs"]["weights"] = "sharpness=0.2\nexposure=3.0"
    result = comfy.run(second)
    cached = {node for event, data in result.status_messages if event == "execution_cached" for node in data["nodes"]}
    assert {"global", "local", "score1", "score2"} <= cached, cached
    assert not {"pot2", "elite2"} & cached, "the changed potential and the selection after it must run again"
    assert json.loads(captured["report"])["weights"] == {"sharpness": 0.2, "exposure": 3.0}
