"""Node behaviour the README promises, pinned in a real in-process ComfyUI: EliteSelect with M > 1,
the score cache, per-step progress and previews, and the input guards."""

from __future__ import annotations

import importlib
import json
import re
import time

import pytest
import torch

from eacps.search.grid import BORDER, WINNER
from eacps.search.noise import make_noise
from eacps.search.pool import SearchError
from host.graphs import base_nodes, capture, global_node
from host.test_search_nodes import selection_nodes

pytestmark = pytest.mark.host


def elite_prompt(seed: int, m: int, k_global: int = 8) -> dict:
    p = base_nodes()
    p["global"] = global_node(k_global=k_global, seed=seed)
    p.update(selection_nodes("s", ["global", 0], m))
    for slot, name in enumerate(("pool", "image", "latent", "noise", "seed", "report", "grid")):
        p[f"cap_{name}"] = capture(["s_elite", slot], name)
    return p


def winner_frame(grid: torch.Tensor) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1) of the winner-green pixels below the legend strip (its colour
    key is a small green square in the top 32 px)."""
    arr = (grid[0] * 255).round().to(torch.int64)
    mask = (arr == torch.tensor(WINNER)).all(-1)
    mask[:32] = False
    ys, xs = mask.nonzero(as_tuple=True)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("m", [3, 8])
def test_elite_select_outputs_are_all_the_best_candidates(comfy, captured, m):
    start = time.perf_counter()
    comfy.run(elite_prompt(seed=41 + m, m=m))
    elapsed = time.perf_counter() - start
    pool = captured["pool"]
    # the best candidate by the weights (sharpness=1, exposure=1), computed from its scores here
    totals = {c.id: c.score(*pool.score_names()["sharpness"]) + c.score(*pool.score_names()["exposure"])
              for c in pool.candidates}
    best = pool.get(max(totals, key=lambda cid: (totals[cid], -cid)))
    ranked = sorted(totals, key=lambda cid: (-totals[cid], cid))
    assert pool.selection.ids == tuple(ranked[:m]) and [c.id for c in pool.candidates if c.elite] == sorted(ranked[:m])
    assert torch.equal(captured["image"], best.image)
    assert torch.equal(captured["latent"]["samples"], best.latent)
    assert captured["seed"] == best.seed and captured["noise"].seed == best.seed
    template = {"samples": torch.zeros(1, 4, 8, 8)}
    assert torch.equal(captured["noise"].generate_noise(template), make_noise(best.recipe, (1, 4, 8, 8)))
    report = json.loads(captured["report"])
    assert report["winner"] == best.id and report["winner_seed"] == best.seed
    assert report["elites"] == ranked[:m]
    assert report["setup"] == {"seed": 41 + m, "steps": 4, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
                               "denoise": 1.0, "latent_shape": [1, 4, 8, 8], "max_sub_batch": 8, "sub_batch_used": 8,
                               "one_at_a_time": None}  # euler batches (issue 17)
    # per-candidate timings are shares of their sub-batch's time: together no more than the whole run
    timings = [dict(c.timings) for c in pool.candidates]
    assert all(t["sub_batch"] == 8.0 and t["sample"] > 0 and t["decode"] > 0 for t in timings)
    assert sum(t["sample"] + t["decode"] for t in timings) < elapsed
    # the grid frames that same candidate in green: its thumbnail (64 px enlarged x2) sits inside the frame
    x0, y0, x1, y1 = winner_frame(captured["grid"])
    assert (x1 - x0, y1 - y0) == (128 + 2 * BORDER, 128 + 2 * BORDER)
    shown = (captured["grid"][0, y0 + BORDER:y1 - BORDER, x0 + BORDER:x1 - BORDER] * 255).round()
    expected = (best.image[0].clamp(0, 1) * 255).round().repeat_interleave(2, 0).repeat_interleave(2, 1)
    assert torch.equal(shown, expected)


class Counting:
    """Wraps a verifier class so each scoring call records its batch size."""

    @staticmethod
    def make(cls, *args, **kwargs):
        class Counted(cls):
            def _score(self, images, prompt, reference):
                self.calls.append(images.shape[0])
                return super()._score(images, prompt, reference)

        v = Counted(*args, **kwargs)
        v.calls = []
        return v


def test_the_score_cache_rescores_exactly_when_prompt_or_reference_change(comfy, captured):
    from eacps.nodes.scoring import score_pool
    from eacps.verifiers.preservation import PreservationVerifier
    from eacps.verifiers.technical import TechnicalQualityVerifier

    comfy.run(elite_prompt(seed=52, m=1, k_global=4))
    pool = captured["pool"]
    images = torch.cat([c.image for c in pool.candidates])
    ref_a = images[1:2].clone()
    ref_b = torch.flip(images[2:3], dims=[2]).clone()
    uses_ref = Counting.make(PreservationVerifier, "identity", "ssim_only", 1.0)
    ignores_ref = Counting.make(TechnicalQualityVerifier, 32)

    def values(p, v):
        return [c.score(v.identity, v.aspects[0]) for c in p.candidates]

    a = score_pool(pool, uses_ref, "a cat", ref_a)
    assert uses_ref.calls == [4]
    assert values(a, uses_ref) == pytest.approx(uses_ref.score(images, "a cat", ref_a).scores["identity"].tolist())
    assert values(a, uses_ref)[1] == pytest.approx(10.0)  # candidate 1 is the reference itself
    uses_ref.calls.clear()
    # neither changed (the same pixels in another tensor count as the same reference): re-used
    assert score_pool(a, uses_ref, "a cat", ref_a.clone()) is a and uses_ref.calls == []
    # a changed reference: re-scored, against the new reference
    b = score_pool(a, uses_ref, "a cat", ref_b)
    assert uses_ref.calls == [4]
    assert values(b, uses_ref) == pytest.approx(uses_ref.score(images, "a cat", ref_b).scores["identity"].tolist())
    assert values(b, uses_ref) != values(a, uses_ref)
    # a changed prompt: re-scored
    uses_ref.calls.clear()
    c = score_pool(b, uses_ref, "a dog", ref_b)
    assert uses_ref.calls == [4] and c is not b

    t = score_pool(pool, ignores_ref, "a cat", ref_a)
    assert ignores_ref.calls == [4]
    assert score_pool(t, ignores_ref, "a cat", ref_b) is t  # it ignores the reference: nothing to redo
    assert score_pool(t, ignores_ref, "a cat") is t
    assert ignores_ref.calls == [4]
    t2 = score_pool(t, ignores_ref, "a bird", None)
    assert ignores_ref.calls == [4, 4] and t2 is not t
    assert values(t2, ignores_ref) == values(t, ignores_ref)  # the same images score the same

    # new candidates only: the cached ones are not sent again
    from eacps.search.strategy import LocalRefinement, stage_rng, to_candidates

    marked = t2.with_elites((0,))
    props, round_ = LocalRefinement(2, "slerp", 0.5, 0.5, stage_rng(1, 1)).ask(marked)
    grown = marked.add(to_candidates(marked, props, image=[images[:1].clone(), images[3:4].clone()]), round_)
    ignores_ref.calls.clear()
    scored = score_pool(grown, ignores_ref, "a bird")
    assert ignores_ref.calls == [2]
    assert values(scored, ignores_ref)[4:] == [values(t2, ignores_ref)[0], values(t2, ignores_ref)[3]]


def test_progress_moves_every_step_of_every_sub_batch_and_sends_previews(comfy, captured):
    comfy_utils = importlib.import_module("comfy.utils")
    cli_args = importlib.import_module("comfy.cli_args")
    updates = []
    method = cli_args.args.preview_method
    cli_args.args.preview_method = cli_args.LatentPreviewMethod.Latent2RGB
    comfy_utils.set_progress_bar_global_hook(lambda v, t, preview, node_id=None: updates.append((v, t, preview)))
    try:
        p = base_nodes()
        p["global"] = global_node(k_global=5, max_sub_batch=2, seed=777, steps=4)
        p["cap"] = capture(["global", 0], "progress_pool")
        comfy.run(p)
    finally:
        comfy_utils.set_progress_bar_global_hook(None)
        cli_args.args.preview_method = method
    ours = [(v, preview is not None) for v, t, preview in updates if t == 20]
    # sub-batches of 2, 2 and 1 candidates, 4 steps each: the bar moves by the sub-batch size per
    # step (with a preview), and is set again when each sub-batch is decoded
    assert ours == [(2, True), (4, True), (6, True), (8, True), (8, False),
                    (10, True), (12, True), (14, True), (16, True), (16, False),
                    (17, True), (18, True), (19, True), (20, True), (20, False)]
    previews = [preview for _, t, preview in updates if t == 20 and preview is not None]
    assert all(kind == "JPEG" and image.size[0] > 0 for kind, image, *_ in previews)


def test_noise_output_refuses_a_latent_of_another_shape_or_with_batch_index(comfy, captured):
    comfy.run(elite_prompt(seed=61, m=1, k_global=2))
    noise = captured["noise"]
    best = captured["pool"].get(captured["pool"].selection.ids[0])
    assert torch.equal(noise.generate_noise({"samples": torch.zeros(1, 4, 8, 8)}),
                       make_noise(best.recipe, (1, 4, 8, 8)))
    for shape in [(1, 4, 8, 16), (2, 4, 8, 8), (1, 16, 8, 8)]:
        with pytest.raises(SearchError, match=re.escape(f"latent shape [1, 4, 8, 8], but the latent has shape {list(shape)}")):
            noise.generate_noise({"samples": torch.zeros(shape)})
    with pytest.raises(SearchError, match="batch_index"):
        noise.generate_noise({"samples": torch.zeros(1, 4, 8, 8), "batch_index": [3]})


def test_a_latent_with_batch_index_is_refused_before_sampling(comfy):
    p = base_nodes()
    p["repeat"] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["latent", 0], "amount": 3}}
    p["pick"] = {"class_type": "LatentFromBatch", "inputs": {"samples": ["repeat", 0], "batch_index": 1, "length": 1}}
    p["global"] = global_node(k_global=2)
    p["global"]["inputs"]["latent_image"] = ["pick", 0]
    p["cap"] = capture(["global", 0], "never")
    result = comfy.run(p, expect_success=False)
    assert not result.success and "batch_index" in result.error() and "plain batch-1 latent" in result.error()
