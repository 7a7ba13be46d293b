"""Failures stay contained (issue 12): a candidate with NaN pixels or a non-finite verifier score is
marked invalid and ranked out instead of failing the search, and the winner's image is the stock
decode of the winner's latent."""

from __future__ import annotations

import importlib
import json
import sys

import pytest
import torch

from host.graphs import base_nodes, capture, global_node, one_node_prompt, search_node, two_stage_prompt

pytestmark = pytest.mark.host


def _tiny(comfy):
    return sys.modules[comfy.nodes.NODE_CLASS_MAPPINGS["EACPSTest_TinyVAE"].__module__].tiny


def stage1_pool(comfy, captured, seed=3, k_global=8, width=64):
    p = base_nodes(width=width, height=width)
    p["global"] = global_node(k_global=k_global, seed=seed)
    p["cap"] = capture(["global", 0], "stage1")
    comfy.run(p)
    return captured["stage1"]


@torch.inference_mode()
def overflow_threshold(comfy, pool, n_bad: int) -> tuple[float, list[int]]:
    """A threshold that makes the OverflowVAE decode the ``n_bad`` candidates with the largest
    channel-0 value to NaN, and the ids of those candidates."""
    tiny = _tiny(comfy)
    values = tiny.decoder_channel0(tiny.tiny_vae(0), torch.cat([c.latent for c in pool.candidates]))
    order = values.argsort(descending=True).tolist()
    if n_bad == 0:
        return float(values.max()) + 1.0, []
    if n_bad == len(order):
        return float(values.min()) - 1.0, order
    cut = (float(values[order[n_bad - 1]]) + float(values[order[n_bad]])) / 2
    return cut, sorted(order[:n_bad])


def overflow_search(threshold: float, **kwargs) -> dict:
    p = one_node_prompt(search_node(seed=3, k_global=8, m=3, k_local=2, **kwargs))
    p["vae"] = {"class_type": "EACPSTest_OverflowVAE", "inputs": {"weights_seed": 0, "threshold": threshold}}
    return p


def test_a_nan_decode_marks_the_candidate_invalid_and_the_search_goes_on(comfy, captured):
    pool = stage1_pool(comfy, captured)
    threshold, bad = overflow_threshold(comfy, pool, 2)
    comfy.run(overflow_search(threshold))
    report = json.loads(captured["one_report"])
    invalid = {int(k): v for k, v in report["invalid"].items()}
    assert set(bad) <= set(invalid), (bad, invalid)
    for cid in bad:
        assert "non-finite pixel" in invalid[cid] and "fp32 or bf16 VAE" in invalid[cid]
        cand = report["candidates"][cid]
        assert cand["invalid"] == invalid[cid] and cand["potential"] is None and not cand["elite"]
    assert report["winner"] not in invalid
    assert not set(report["budget"]["rounds"][0]["elites"]) & set(invalid)
    assert torch.isfinite(captured["one_image"]).all()
    assert len(report["candidates"]) == 8 + 3 * 2  # the refinement still ran
    assert captured["one_grid"].shape[0] == 1


def test_every_candidate_invalid_fails_naming_candidates_and_cause(comfy, captured):
    pool = stage1_pool(comfy, captured)
    threshold, _ = overflow_threshold(comfy, pool, 8)
    result = comfy.run(overflow_search(threshold), expect_success=False)
    message = result.error()
    assert not result.success
    assert "every candidate is invalid" in message
    assert all(f"candidate {i}:" in message for i in range(8)), message
    assert "fp32 or bf16 VAE" in message and "image(s) [" not in message


class HalfDefined:
    """A verifier whose formula is undefined for darker images: sqrt(mean pixel - t) * 100 is NaN
    below t (a verifier model that breaks on some inputs)."""

    def __new__(cls, t: float):
        from eacps.verifiers.base import Verifier, VerifierResult

        class _HalfDefined(Verifier):
            kind = "half_defined"
            aspects = ("sharpness",)
            _identity = "half_defined"

            def _score(self, images, prompt, reference):
                raw = (images.double().mean(dim=(1, 2, 3)) - t).sqrt() * 100
                return VerifierResult(scores={"sharpness": raw.clamp(max=10)}, raw={"sharpness": raw})

        return _HalfDefined()


def test_a_non_finite_score_marks_the_candidate_invalid_by_id(comfy, captured):
    from eacps.nodes.scoring import apply_weights, score_pool
    from eacps.nodes.selection import select_best
    from eacps.verifiers.base import VerifierError

    pool = stage1_pool(comfy, captured, seed=11)
    means = [float(c.image.double().mean()) for c in pool.candidates]
    t = sorted(means)[len(means) // 2]
    dark = [c.id for c in pool.candidates if means[c.id] < t]
    bright = [c.id for c in pool.candidates if means[c.id] >= t]
    assert dark and bright, means  # the fixture needs both kinds
    verifier = HalfDefined(t)
    with pytest.raises(VerifierError, match="batch position"):  # called directly it still refuses NaN
        verifier.score(torch.cat([c.image for c in pool.candidates]), "")
    scored = apply_weights(score_pool(pool, verifier, ""), "sharpness=1")
    assert [c.id for c in scored.candidates if not c.valid] == dark
    for cid in dark:
        assert scored.get(cid).invalid.startswith("half_defined gave a non-finite 'sharpness' score")
    marked, *_, report = select_best(scored, len(pool))
    assert set(marked.selection.ids) == set(bright)  # fewer elites than asked: only valid ones
    assert json.loads(report)["winner"] in bright


def issue_graph(width: int = 64) -> dict:
    """The graph of issue 12, item 6, plus a stock VAEDecode of the winner's latent."""
    p = two_stage_prompt(k_global=4, m=2, k_local=4, seed=201, steps=4, cfg=1.0, sampler_name="euler",
                         scheduler="simple", weights="sharpness=1.0\nexposure=0.5")
    p["latent"]["inputs"].update(width=width, height=width)
    p["verifier"]["inputs"]["size"] = 0
    p["cap_img"] = capture(["elite2", 1], "winner_image")
    p["stock"] = {"class_type": "VAEDecode", "inputs": {"samples": ["elite2", 2], "vae": ["vae", 0]}}
    p["cap_stock"] = capture(["stock", 0], "stock_image")
    return p


def test_winner_image_is_the_stock_decode_of_the_winner_latent(comfy, captured):
    comfy.run(issue_graph())
    diff = (captured["winner_image"] - captured["stock_image"]).abs().max()
    assert diff <= 1 / 255, diff


@torch.inference_mode()
def test_every_candidate_as_winner_equals_its_stock_decode(comfy, captured):
    """Latents of 9x9 (72 px) spread like the tiny model's (|x| up to ~300): the tiny VAE's batch-of-8
    decode, as the search runs it, differs from its batch-1 decode in a saturated pixel (the raw
    output is ~1e9, clamped to [0, 1]: 0 vs 255 in 8 bits). Whichever candidate wins, the output must
    be the stock decode of the output latent."""
    from dataclasses import replace

    from eacps.nodes.sampling import decode
    from eacps.nodes.selection import select_best

    stock_decode = importlib.import_module("nodes").VAEDecode().decode
    pool = stage1_pool(comfy, captured, seed=201, width=72)
    latents = torch.randn(8, 4, 9, 9, generator=torch.Generator().manual_seed(9)) * 100
    batch = decode(pool.setup.vae, latents)  # one sub-batch of 8, as run_candidates decodes it
    pool = replace(pool, candidates=tuple(
        replace(c, latent=latents[i:i + 1], image=batch[i:i + 1]) for i, c in enumerate(pool.candidates)))
    alone = torch.cat([stock_decode(pool.setup.vae, {"samples": c.latent})[0] for c in pool.candidates])
    flips = ((batch - alone).abs() > 1 / 255).flatten(1).any(1)
    assert flips.any(), "precondition: the batch decode differs from the batch-1 decode somewhere"
    for cid in flips.nonzero().flatten().tolist():
        scored = pool.with_potentials({c.id: float(c.id == cid) for c in pool.candidates}, {"x": 1.0})
        _, image, latent, *_ = select_best(scored, 1)
        assert torch.equal(latent["samples"], pool.get(cid).latent)
        assert (image - stock_decode(pool.setup.vae, latent)[0]).abs().max() <= 1 / 255


LOADERS = {  # loader, inputs, the verifier's text length (CLIP 77, ImageReward's BLIP 35)
    "clip_score": ("EACPS_LoadClipScoreVerifier", {"weights": "tiny_clip.safetensors"}, 77),
    "hpsv2": ("EACPS_LoadHPSv2Verifier", {"weights": "tiny_hps.pt", "download": False}, 77),
    "pickscore": ("EACPS_LoadPickScoreVerifier", {"model_folder": "tiny_pickscore"}, 77),
    "imagereward": ("EACPS_LoadImageRewardVerifier",
                    {"model_folder": "tiny_imagereward", "checkpoint": "ImageReward.pt", "download": False}, 35),
}


@pytest.mark.parametrize("kind", sorted(LOADERS))
def test_a_prompt_cut_at_the_token_limit_is_reported(comfy, captured, preference_files, kind):
    from verifier_checks import load_verifier
    from verifier_models import TINY_CLIP

    from eacps.nodes.scoring import score_pool
    from eacps.search.report import build_report

    class_type, inputs, limit = LOADERS[kind]
    if kind in ("clip_score", "hpsv2"):
        inputs = {"arch": TINY_CLIP, **inputs}
    v = load_verifier(comfy, captured, class_type, inputs)
    pool = stage1_pool(comfy, captured, k_global=2)
    # "red" is one token in CLIP's BPE (real and the tiny test vocabulary, which merges r+e+d</w>) and
    # in the tiny BERT vocabulary: 100 words + start and end markers = 102
    long = score_pool(pool, v, "red " * 100)
    report = build_report(long, 0)
    assert report["prompt_truncated"] == {
        v.identity: f"{v.identity} read only the first {limit} of the prompt's 102 tokens; the rest did not "
                    "count in its score"}
    assert build_report(score_pool(pool, v, "red " * (limit - 2)), 0)["prompt_truncated"] == {}  # exactly fits


def test_a_reference_of_two_images_is_refused_before_sampling(comfy):
    comfy_utils = importlib.import_module("comfy.utils")
    p = one_node_prompt(search_node(seed=1, k_global=2, m=1, k_local=1, weights="identity=1"), key="one")
    p["verifier"] = {"class_type": "EACPS_LoadPreservationVerifier",
                     "inputs": {"aspect": "identity", "backbone": "ssim_only", "dinov2_folder": "x", "clip_arch": "x",
                                "clip_weights": "x", "ssim_weight": 1.0}}
    p["ref"] = {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 0}}
    p["one"]["inputs"]["reference"] = ["ref", 0]
    progress = []
    comfy_utils.set_progress_bar_global_hook(lambda v, t, preview, node_id=None: progress.append((v, t)))
    try:
        result = comfy.run(p, expect_success=False)
    finally:
        comfy_utils.set_progress_bar_global_hook(None)
    assert not result.success and "'reference' has shape [2, 64, 64, 3]" in result.error()
    assert progress == [], "nothing may be sampled before the inputs are refused"


def test_scoring_marks_a_valid_candidate_with_non_finite_pixels_invalid_and_scores_the_others(comfy, captured):
    """A pool can reach Verifier Score with a picture the runner never checked (a pool edited by
    another pack's node, say): the verifier is never shown non-finite pixels; that candidate is
    marked invalid with the reason, the others are scored."""
    from dataclasses import replace

    from eacps.nodes.scoring import score_pool
    from eacps.verifiers.technical import TechnicalQualityVerifier

    comfy.run(two_stage_prompt(seed=21, k_global=3, m=1, k_local=1))
    pool = captured["pool"]
    nan = replace(pool.candidates[1], image=torch.full_like(pool.candidates[1].image, float("nan")))
    pool = replace(pool, candidates=(pool.candidates[0], nan, *pool.candidates[2:]))
    verifier = TechnicalQualityVerifier(32)  # not yet in the pool: every valid candidate is scored
    scored = score_pool(pool, verifier, "a red apple")
    assert scored.get(1).invalid == "its decoded image has non-finite pixels"
    assert not scored.get(1).scored_by(verifier.identity)
    others = [c for c in scored.candidates if c.id != 1]
    assert others and all(c.valid and c.scored_by(verifier.identity) for c in others)
