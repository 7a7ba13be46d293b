"""EACPS_Search and EACPS_BestOfN in a real in-process ComfyUI on the tiny test models."""

from __future__ import annotations

import importlib
import json

import pytest
import torch

from harness.inprocess import PromptInvalid
from host.graphs import best_of_n_node, capture, one_node_prompt, search_node, two_stage_prompt

pytestmark = pytest.mark.host

ATOL = 1e-5


def _same_search(five: dict, one: dict) -> None:
    assert one["winner_seed"] == five["winner_seed"]
    assert one["budget"] == five["budget"]
    assert one["weights"] == five["weights"]
    assert len(one["candidates"]) == len(five["candidates"])
    for a, b in zip(one["candidates"], five["candidates"], strict=True):
        assert a["recipe"] == b["recipe"], (a["id"], a["recipe"], b["recipe"])
        assert (a["generation"], a["parent"]) == (b["generation"], b["parent"])
        assert a["potential"] == pytest.approx(b["potential"], abs=ATOL)
        assert a["scores"] == pytest.approx(b["scores"], abs=ATOL)


def test_one_node_search_equals_the_five_node_graph(comfy, captured):
    settings = dict(seed=3, k_global=6, m=2, k_local=3, mode="slerp", strength=0.6, anneal=0.5)
    p = two_stage_prompt(**settings)
    p.update({k: v for k, v in one_node_prompt(search_node(**settings)).items() if k not in p})
    comfy.run(p)
    five, one = json.loads(captured["report"]), json.loads(captured["one_report"])
    _same_search(five, one)
    assert one["budget"]["formula"] == "6 + 2*3 = 12"
    assert captured["one_seed"] == captured["seed"] == five["winner_seed"]
    torch.testing.assert_close(captured["one_latent"]["samples"], captured["latent"]["samples"], atol=ATOL, rtol=0)
    assert captured["one_noise"].recipe == captured["noise"].recipe
    assert captured["one_image"].shape == (1, 64, 64, 3)


def test_two_generations_equal_two_chained_refinements(comfy, captured):
    """generations=2 with sphere children and annealing = the five-node chain extended by one round."""
    settings = dict(seed=4, k_global=5, m=2, k_local=2, mode="sphere", strength=0.8, anneal=0.5)
    p = two_stage_prompt(**settings)
    weights = p["pot1"]["inputs"]["weights"]
    p["elite2"]["inputs"]["m"] = 2
    p.update({
        "local2": {"class_type": "EACPS_LocalSeedRefine",
                   "inputs": {"candidates": ["elite2", 0], "k_local": 2, "mode": "sphere", "strength": 0.8,
                              "anneal": 0.5}},
        "score3": {"class_type": "EACPS_VerifierScore",
                   "inputs": {"candidates": ["local2", 0], "verifier": ["verifier", 0], "prompt": "a red apple"}},
        "pot3": {"class_type": "EACPS_WeightedPotential", "inputs": {"candidates": ["score3", 0], "weights": weights}},
        "elite3": {"class_type": "EACPS_EliteSelect", "inputs": {"candidates": ["pot3", 0], "m": 1}},
        "cap_report": capture(["elite3", 5], "report"),
    })
    p.update({k: v for k, v in one_node_prompt(search_node(generations=2, **settings)).items() if k not in p})
    comfy.run(p)
    five, one = json.loads(captured["report"]), json.loads(captured["one_report"])
    _same_search(five, one)
    assert [r["strength"] for r in one["budget"]["rounds"]] == [0.8, 0.4]
    assert one["budget"]["formula"] == "5 + 2*2 + 2*2 = 13"


def test_one_progress_bar_over_the_whole_search(comfy, captured):
    comfy_utils = importlib.import_module("comfy.utils")
    progress = []
    comfy_utils.set_progress_bar_global_hook(lambda v, t, preview, node_id=None: progress.append((v, t)))
    try:
        result = comfy.run(one_node_prompt(search_node(seed=8, k_global=4, m=2, k_local=2, generations=2)))
    finally:
        comfy_utils.set_progress_bar_global_hook(None)
    # 12 candidates, each 4 sampler steps + 1 unit for its scoring by the one verifier
    assert {t for _, t in progress} == {(4 + 2 * 2 * 2) * (4 + 1)}
    values = [v for v, _ in progress]
    assert values == sorted(values) and values[-1] == 60
    # the grid is shown on the node as a preview image
    assert result.outputs["one"]["images"][0]["type"] == "temp"


def test_best_of_n_equals_global_search_with_k_global_n(comfy, captured):
    p = two_stage_prompt(seed=6, k_global=7, m=1)
    p.update({k: v for k, v in one_node_prompt(best_of_n_node(n=7, seed=6), key="bon").items() if k not in p})
    comfy.run(p)
    bon = json.loads(captured["bon_report"])
    assert bon["budget"]["formula"] == "7 = 7" and len(bon["candidates"]) == 7
    stage1 = json.loads(captured["report"])["candidates"][:7]
    assert [c["seed"] for c in bon["candidates"]] == [c["seed"] for c in stage1]
    assert bon["candidates"][0]["seed"] == 6
    best = max(bon["candidates"], key=lambda c: (c["potential"], -c["id"]))
    assert captured["bon_seed"] == best["seed"] == bon["winner_seed"]
    assert all(c["generation"] == 0 for c in bon["candidates"])


def test_grid_output_has_one_cell_per_candidate(comfy, captured):
    from eacps.search.grid import BORDER, WINNER

    comfy.run(one_node_prompt(best_of_n_node(n=5, seed=2), key="bon"))
    grid = captured["bon_grid"]
    # by hand: 5 cells of 64 px pictures (shown at 128 px) in 3 columns and 2 rows, each
    # 128 + 2 * 4 + 6 = 142 wide and 128 + 8 + 5 * 13 + 6 = 207 tall, a 6 px margin, a 32 px legend
    assert grid.shape == (1, 32 + 12 + 2 * 207, 12 + 3 * 142, 3)
    # the winner's picture, framed in green (a 136 px square ring)
    arr = (grid[0] * 255).round()
    winner = (arr == torch.tensor(WINNER, dtype=arr.dtype)).all(-1)
    winner[:32] = False
    ys, xs = winner.nonzero(as_tuple=True)
    assert (int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1) == (128 + 2 * BORDER, 128 + 2 * BORDER)
    x0, y0 = int(xs.min()) + BORDER, int(ys.min()) + BORDER
    shown = arr[y0:y0 + 128, x0:x0 + 128]
    expected = (captured["bon_image"][0].clamp(0, 1) * 255).round().repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert torch.equal(shown, expected)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"weights": "clip_score=1.0"}, "none of the connected verifiers produce"),
        ({"m": 9}, "M = 9 elites, but only K_global = 8"),
        ({"strength": 0.0}, "strength"),
        ({"weights": "sharpness=abc"}, "not a number"),
        ({"cfg": 200.0}, "bigger than max"),  # ComfyUI's own range checks stay on
        # ComfyUI 0.3.75 checks no V3 combo and its KSampler would silently use euler: we refuse it
        ({"sampler_name": "no_such_sampler"}, "sampler_name = 'no_such_sampler' is not one of"),
        ({"scheduler": "no_such_scheduler"}, "scheduler = 'no_such_scheduler' is not one of"),
        ({"k_local": 0}, "k_local"),
    ],
)
def test_bad_inputs_are_refused_before_sampling(comfy, change, match):
    node = search_node()
    node["inputs"].update(change)
    comfy_utils = importlib.import_module("comfy.utils")
    progress = []
    comfy_utils.set_progress_bar_global_hook(lambda v, t, preview, node_id=None: progress.append((v, t)))
    try:
        try:
            result = comfy.run(one_node_prompt(node), expect_success=False)
            message = result.error()
            assert not result.success
        except PromptInvalid as e:
            message = str(e.details)
    finally:
        comfy_utils.set_progress_bar_global_hook(None)
    assert match in message
    assert progress == [], "nothing may be sampled before the inputs are refused"


def test_unknown_weight_names_list_the_available_scores(comfy):
    node = search_node(weights="sharpnes=1.0")
    result = comfy.run(one_node_prompt(node), expect_success=False)
    assert "available: exposure, sharpness" in result.error()


def test_the_last_preview_of_a_one_node_search_is_its_candidate_grid(comfy, captured):
    """When the search ends, the node's preview shows the grid it outputs (as a PNG of its 8-bit
    pixels), so the user sees every candidate and the winner before opening the outputs."""
    import numpy as np

    comfy_utils = importlib.import_module("comfy.utils")
    cli_args = importlib.import_module("comfy.cli_args")
    previews = []
    method = cli_args.args.preview_method
    cli_args.args.preview_method = cli_args.LatentPreviewMethod.Latent2RGB
    comfy_utils.set_progress_bar_global_hook(lambda v, t, preview, node_id=None: previews.append(preview))
    try:
        comfy.run(one_node_prompt(search_node(seed=33, k_global=3, m=1, k_local=1)))
    finally:
        comfy_utils.set_progress_bar_global_hook(None)
        cli_args.args.preview_method = method
    kind, image, size = [p for p in previews if p is not None][-1]
    assert kind == "PNG" and size is None
    grid = captured["one_grid"]
    assert np.array_equal(np.asarray(image), (grid[0] * 255).round().to(torch.uint8).numpy())


def test_a_verifier_on_any_slot_is_used(comfy, captured):
    """Verifiers connected to verifier_2 (and the later slots) score and weigh in like verifier_1's."""
    p = one_node_prompt(search_node(seed=35, k_global=3, m=1, k_local=1,
                                    weights="technical#1.sharpness=1\ntechnical#2.exposure=1"))
    p["verifier_32"] = {"class_type": "EACPS_LoadTechnicalVerifier", "inputs": {"size": 32}}
    p["one"]["inputs"]["verifier_2"] = ["verifier_32", 0]
    comfy.run(p)
    report = json.loads(captured["one_report"])
    for node in ("EACPS_Search", "EACPS_BestOfN"):  # the socket names workflows and API prompts use
        info = comfy.nodes.NODE_CLASS_MAPPINGS[node].GET_NODE_INFO_V1()["input"]
        assert "verifier_1" in info["required"] and {"verifier_2", "verifier_3", "verifier_4"} <= set(info["optional"])
    used = {s["verifier"] for s in report["scores"].values()}
    assert used == {"technical-v1-size64", "technical-v1-size32"}, report["scores"]
    assert report["weights"] == {"technical#1.sharpness": 1.0, "technical#2.exposure": 1.0}
