"""Another pack's verifier (tests/third_party_pack, installed in the host beside ours, importing
nothing of ours) feeds EACPS_VerifierScore and EACPS_Search in real prompts; malformed objects and
results from it are refused with messages naming what is wrong."""

from __future__ import annotations

import importlib
import json
import re
import sys

import pytest
import torch

from host.graphs import base_nodes, capture, global_node, one_node_prompt, search_node

pytestmark = pytest.mark.host

LOADER = "ThirdParty_LoadBrightnessVerifier"


def _loader(needs_reference=False, broken="none") -> dict:
    return {"class_type": LOADER, "inputs": {"needs_reference": needs_reference, "broken": broken}}


@pytest.fixture(scope="module")
def seen(comfy):
    return sys.modules[comfy.nodes.NODE_CLASS_MAPPINGS[LOADER].__module__].SEEN


def _brightness(image: torch.Tensor) -> float:
    return float(image.double().mean() * 10.0)  # the third party's score, computed independently


def _score_prompt(broken="none") -> dict:
    p = base_nodes()
    p.update({
        "global": global_node(k_global=4),
        "verifier": _loader(broken=broken),
        "score": {"class_type": "EACPS_VerifierScore",
                  "inputs": {"candidates": ["global", 0], "verifier": ["verifier", 0], "prompt": "a red apple"}},
        "cap_pool": capture(["score", 0], "tp_pool"),
    })
    return p


def test_third_party_verifier_scores_a_pool(comfy, captured, seen):
    comfy.run(_score_prompt())
    pool = captured["tp_pool"]
    assert [v.kind for v in pool.verifiers] == ["thirdparty_brightness"]
    assert len(pool.candidates) == 4
    for c in pool.candidates:
        assert c.score("thirdparty_brightness:brightness", "brightness") == pytest.approx(_brightness(c.image), abs=1e-5)
    assert seen["loaded"] is True  # EACPS loaded the pack's ModelPatcher before calling score()
    assert seen["reference"] is None


def test_third_party_verifier_drives_the_one_node_search(comfy, captured):
    p = one_node_prompt(search_node(k_global=4, m=2, k_local=2, weights="brightness=1.0\nsharpness=0.5"))
    p["verifier_tp"] = _loader()
    p["one"]["inputs"]["verifier_2"] = ["verifier_tp", 0]
    comfy.run(p)
    report = json.loads(captured["one_report"])
    assert len(report["candidates"]) == 4 + 2 * 2
    for c in report["candidates"]:
        assert c["potential"] == pytest.approx(c["scores"]["brightness"] + 0.5 * c["scores"]["sharpness"], abs=1e-9)
    best = max(report["candidates"], key=lambda c: c["potential"])
    assert report["winner"] == best["id"]
    assert best["scores"]["brightness"] == pytest.approx(_brightness(captured["one_image"]), abs=1e-5)


def test_third_party_reference_verifier_gets_the_reference(comfy, captured, seen):
    reference = {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": 0x808080}}
    p = one_node_prompt(search_node(k_global=3, m=1, k_local=1, weights="closeness=1.0"))
    p.update({"verifier": _loader(needs_reference=True), "ref": reference})
    p["one"]["inputs"]["reference"] = ["ref", 0]
    comfy.run(p)
    ref_mean = float(seen["reference"].double().mean())
    assert ref_mean == pytest.approx(128 / 255, abs=1e-6)
    expected = 10.0 * (1.0 - abs(float(captured["one_image"].double().mean()) - ref_mean))
    report = json.loads(captured["one_report"])
    winner = next(c for c in report["candidates"] if c["id"] == report["winner"])
    assert winner["scores"]["closeness"] == pytest.approx(expected, abs=1e-5)


def test_reference_verifier_without_reference_is_refused_before_sampling(comfy):
    p = one_node_prompt(search_node(k_global=3, m=1, k_local=1, weights="closeness=1.0"))
    p["verifier"] = _loader(needs_reference=True)
    comfy_utils = importlib.import_module("comfy.utils")
    progress = []
    comfy_utils.set_progress_bar_global_hook(lambda v, t, preview, node_id=None: progress.append(v))
    try:
        result = comfy.run(p, expect_success=False)
    finally:
        comfy_utils.set_progress_bar_global_hook(None)
    assert not result.success
    assert "thirdparty_brightness:closeness needs a reference image" in result.error()
    assert progress == []  # no sampling step ran


@pytest.mark.parametrize("broken, message", [
    ("no_aspects", r"third_party_verifier_pack.BrightnessVerifier is not an EACPS verifier: 'aspects' must be a "
                   r"non-empty tuple of str, got missing"),
    ("score_out_of_range", r"thirdparty_brightness:brightness: aspect 'brightness' left \[0, 10\]"),
    ("wrong_batch", r"aspect 'brightness' of result.scores has shape \(1,\), expected \(4,\)"),
    ("bad_patcher", r"'patchers' must hold ComfyUI ModelPatchers .* got \['MeanPixel'\]"),
])
def test_malformed_third_party_verifier_fails_the_prompt_clearly(comfy, broken, message):
    result = comfy.run(_score_prompt(broken), expect_success=False)
    assert not result.success
    error = result.error()
    assert error.startswith("EACPS_VerifierScore: ")
    assert re.search(message, error), error
