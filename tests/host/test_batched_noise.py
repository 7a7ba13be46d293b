"""Every sampler of the host runs candidates in sub-batches without changing any candidate.

The expected values come from stock ComfyUI nodes run on a batch-1 latent: KSampler with a plain
candidate's seed, SamplerCustomAdvanced with a child's NOISE, each decoded by the stock VAEDecode
and quantised to 8 bits as Save Image writes its PNG.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

from host.graphs import base_nodes, capture, global_node, ksampler_node

pytestmark = pytest.mark.host

# The tiny random-weight model ends with latents of magnitude ~100, where float32 steps are ~1e-5:
# batched and batch-1 matrix kernels round differently by some ulps (deterministic samplers too,
# the same on main). So the latent check is 1e-4 relative to the stock latent's standard deviation.
RTOL_STD = 1e-4
# One 8-bit value off by one level means a float difference crossed a rounding boundary.
MAX_OFF_BY_ONE = 0.001
SEED, STEPS, CFG, SCHEDULER = 7, 4, 5.0, "normal"
# max_sub_batch 3: the 3 plain candidates run as one sub-batch of 3, the 2 children as one of 2
K_GLOBAL, K_LOCAL, MAX_SUB_BATCH = 3, 2, 3
# comfy.samplers.KSampler.SAMPLERS of ComfyUI 0.3.75 (a test checks it is this host's list)
HOST_SAMPLERS = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2",
]


def search_prompt(sampler_name: str, max_sub_batch: int) -> dict:
    p = base_nodes()
    p["global"] = global_node(k_global=K_GLOBAL, max_sub_batch=max_sub_batch, seed=SEED, steps=STEPS, cfg=CFG,
                              sampler_name=sampler_name, scheduler=SCHEDULER)
    p.update({
        "verifier": {"class_type": "EACPS_LoadTechnicalVerifier", "inputs": {"size": 64}},
        "score": {"class_type": "EACPS_VerifierScore",
                  "inputs": {"candidates": ["global", 0], "verifier": ["verifier", 0], "prompt": "x"}},
        "pot": {"class_type": "EACPS_WeightedPotential",
                "inputs": {"candidates": ["score", 0], "weights": "sharpness=1.0"}},
        "elite": {"class_type": "EACPS_EliteSelect", "inputs": {"candidates": ["pot", 0], "m": 1}},
        "local": {"class_type": "EACPS_LocalSeedRefine",
                  "inputs": {"candidates": ["elite", 0], "k_local": K_LOCAL, "mode": "slerp", "strength": 0.6,
                             "anneal": 0.5}},
        "cap_pool": capture(["local", 0], "pool"),
    })
    return p


def png_pixels(image: torch.Tensor) -> np.ndarray:
    """What Save Image writes: clip(255 * image) as uint8."""
    return np.clip(255.0 * image.cpu().numpy(), 0, 255).astype(np.uint8)


class Stock:
    """Stock ComfyUI nodes on the tiny model, each on the batch-1 latent."""

    def __init__(self, comfy, captured):
        p = base_nodes()
        for key in ("model", "pos", "neg", "latent", "vae"):
            p[f"cap_{key}"] = capture([key, 0], f"stock_{key}")
        comfy.run(p)
        self.model, self.pos, self.neg = captured["stock_model"], captured["stock_pos"], captured["stock_neg"]
        self.latent, self.vae = captured["stock_latent"], captured["stock_vae"]
        self.m = comfy.nodes.NODE_CLASS_MAPPINGS
        self.samplers = importlib.import_module("comfy.samplers")
        self.discard_penultimate = self.samplers.KSampler.DISCARD_PENULTIMATE_SIGMA_SAMPLERS

    @torch.inference_mode()  # as ComfyUI's executor runs nodes
    def ksampler(self, seed: int, sampler_name: str, latent: dict | None = None) -> torch.Tensor:
        (out,) = self.m["KSampler"]().sample(self.model, seed, STEPS, CFG, sampler_name, SCHEDULER, self.pos,
                                             self.neg, latent or self.latent, denoise=1.0)
        return out["samples"]

    @torch.inference_mode()
    def custom_advanced(self, noise, sampler_name: str, latent: dict | None = None) -> torch.Tensor:
        guider = self.m["CFGGuider"].execute(self.model, self.pos, self.neg, CFG).result[0]
        sampler = self.m["KSamplerSelect"].execute(sampler_name).result[0]
        sigmas = self.m["BasicScheduler"].execute(self.model, SCHEDULER, STEPS, 1.0).result[0]
        if sampler_name in self.discard_penultimate:
            # the KSampler (and so the search) drops the penultimate sigma for these; BasicScheduler
            # does not: give SamplerCustomAdvanced the KSampler's sigmas, as the README tells users
            sigmas = self.samplers.KSampler(self.model, STEPS, "cpu", sampler_name, SCHEDULER, 1.0).sigmas
        return self.m["SamplerCustomAdvanced"].execute(noise, guider, sampler, sigmas,
                                                       latent or self.latent).result[0]["samples"]

    @torch.inference_mode()
    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        return self.m["VAEDecode"]().decode(self.vae, {"samples": samples})[0]


@pytest.fixture(scope="module")
def stock(comfy, captured):
    return Stock(comfy, captured)


def test_per_candidate_noise_is_each_seeds_own_batch_1_stream(comfy):
    """Exactly (bit for bit) what the host's own noise samplers draw for a batch of one."""
    from eacps.nodes import noise_sources as ns

    k = importlib.import_module("comfy.k_diffusion.sampling")
    x = torch.zeros(3, 4, 5, 7)
    seeds = [5, 2**64 - 1, 123456789]
    ours = ns.PerCandidateNoise(x, seeds)
    theirs = [k.default_noise_sampler(x[i:i + 1], seed=s) for i, s in enumerate(seeds)]
    for _ in range(3):  # the stream continues call after call
        assert torch.equal(ours(None, None), torch.cat([t(None, None) for t in theirs]))
    sigmas = torch.tensor([14.6, 6.0, 2.1, 0.5, 0.0])
    for cpu in (True, False):
        ours = ns.brownian_noise(x, sigmas, seeds, cpu=cpu)
        theirs = [k.BrownianTreeNoiseSampler(x[i:i + 1], sigmas[sigmas > 0].min(), sigmas.max(), seed=s, cpu=cpu)
                  for i, s in enumerate(seeds)]
        for a, b in zip(sigmas[:-2], sigmas[1:-1], strict=True):
            assert torch.equal(ours(a, b), torch.cat([t(a, b) for t in theirs]))


def test_the_sampler_list_is_the_hosts(comfy):
    assert HOST_SAMPLERS == list(importlib.import_module("comfy.samplers").KSampler.SAMPLERS), (
        "this ComfyUI lists other samplers than 0.3.75: classify the new ones in nodes/noise_sources.py "
        "(deterministic, default noise, Brownian tree, or one at a time) and update HOST_SAMPLERS"
    )


def test_every_sampler_of_the_host_is_classified_once(comfy):
    from eacps.nodes import noise_sources as ns

    groups = [ns.DETERMINISTIC, ns.DEFAULT_NOISE, set(ns.BROWNIAN), set(ns.ONE_AT_A_TIME)]
    assert sum(len(g) for g in groups) == len(set().union(*groups)), "a sampler is in two groups"
    assert set().union(*groups) == set(HOST_SAMPLERS)


@pytest.mark.parametrize("sampler_name", HOST_SAMPLERS)
def test_each_candidate_equals_its_stock_batch_1_run(comfy, captured, stock, sampler_name):
    """Plain candidates in a sub-batch of 3 each equal the stock KSampler with their seed; children
    in a sub-batch of 2 each equal stock SamplerCustomAdvanced with their NOISE (latent within 1e-4
    of its standard deviation; 8-bit pixels equal but for rare off-by-one values). Samplers that
    cannot batch run one at a time and the report's setup says why."""
    from eacps.nodes import noise_sources as ns

    reason = ns.one_at_a_time_reason(sampler_name)
    comfy.run(search_prompt(sampler_name, MAX_SUB_BATCH))
    pool = captured["pool"]
    assert len(pool) == K_GLOBAL + K_LOCAL
    used = [dict(c.timings)["sub_batch"] for c in pool.candidates]
    assert used == ([1.0] * len(pool) if reason else [3.0] * K_GLOBAL + [2.0] * K_LOCAL), used
    setup = pool.setup.describe()
    assert setup["one_at_a_time"] == reason and setup["sub_batch_used"] == (1 if reason else MAX_SUB_BATCH), setup
    failures = check_candidates(pool, stock, sampler_name, f"{sampler_name}, max_sub_batch {MAX_SUB_BATCH}")
    assert not failures, "\n".join(failures)


def check_candidates(pool, stock, sampler_name: str, label: str, latent: dict | None = None) -> list[str]:
    """Compare every candidate of ``pool`` with its stock batch-1 run; returns what differs."""
    from eacps.nodes.selection import RecipeNoise

    failures = []
    for c in pool.candidates:
        if c.recipe.mode == "seed":
            ref = stock.ksampler(c.seed, sampler_name, latent)
        else:
            ref = stock.custom_advanced(RecipeNoise(c.recipe, pool.setup.noise_shape), sampler_name, latent)
        pixels = png_pixels(stock.decode(ref))
        where = f"{label}, candidate {c.id} ({c.recipe.mode})"
        err = ((c.latent - ref).abs().max() / ref.std()).item()
        if not err <= RTOL_STD:
            failures.append(f"{where}: latent differs from stock by {err:.3g} of its standard deviation")
        levels = np.abs(png_pixels(c.image).astype(np.int16) - pixels)
        if levels.max() > 1 or (levels > 0).mean() > MAX_OFF_BY_ONE:
            failures.append(f"{where}: {int((levels > 0).sum())} of {pixels.size} 8-bit values differ from "
                            f"stock, by up to {levels.max()} levels")
    return failures


@pytest.mark.parametrize("sampler_name", ["ddim", "euler_ancestral"])
def test_with_a_noise_mask_candidates_still_equal_stock(comfy, captured, stock, sampler_name):
    """Inpainting: ddim then draws its starting noise over the whole batch, so it runs one at a
    time; euler_ancestral still batches."""
    from eacps.nodes import noise_sources as ns

    p = search_prompt(sampler_name, MAX_SUB_BATCH)
    p["mask"] = {"class_type": "SolidMask", "inputs": {"value": 0.5, "width": 64, "height": 64}}
    p["masked"] = {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["latent", 0], "mask": ["mask", 0]}}
    p["global"]["inputs"]["latent_image"] = ["masked", 0]
    p["cap_masked"] = capture(["masked", 0], "masked")
    comfy.run(p)
    pool = captured["pool"]
    reason = ns.DDIM_WITH_MASK if sampler_name == "ddim" else None
    assert pool.setup.describe()["one_at_a_time"] == reason
    assert {dict(c.timings)["sub_batch"] for c in pool.candidates} == ({1.0} if reason else {3.0, 2.0})
    failures = check_candidates(pool, stock, sampler_name, f"{sampler_name} with a noise mask", captured["masked"])
    assert not failures, "\n".join(failures)


def test_each_sde_samplers_brownian_tree_is_built_where_the_hosts_own_is(comfy, captured, monkeypatch):
    """BROWNIAN's cpu flag for each sampler is the one the host's sampler gives its own
    BrownianTreeNoiseSampler: a stock KSampler run per sampler, the constructor observed."""
    from eacps.nodes import noise_sources as ns

    k = importlib.import_module("comfy.k_diffusion.sampling")
    seen = []

    class Observed(k.BrownianTreeNoiseSampler):
        def __init__(self, *args, cpu=False, **kwargs):
            seen.append(cpu)
            super().__init__(*args, cpu=cpu, **kwargs)

    monkeypatch.setattr(k, "BrownianTreeNoiseSampler", Observed)
    for name, cpu in ns.BROWNIAN.items():
        seen.clear()
        p = base_nodes()
        p["ks"] = ksampler_node(3, sampler_name=name, steps=1)
        p["cap"] = capture(["ks", 0], "brownian")
        comfy.run(p)
        assert seen and set(seen) == {cpu}, (name, seen)


def test_a_seed_list_of_another_length_than_the_sub_batch_is_refused(comfy):
    from eacps.nodes import noise_sources as ns
    from eacps.search.pool import SearchError

    with pytest.raises(SearchError) as err:
        ns.PerCandidateNoise(torch.zeros(3, 4, 2, 2), [1, 2])
    assert str(err.value) == "2 seeds for a sub-batch of 3 candidates"


def test_a_sampler_that_is_not_comfys_ksampler_is_refused_with_what_to_do(comfy):
    """Per-candidate noise is put into ComfyUI's KSAMPLER; a Sampler of another class (another
    ComfyUI, or a pack's own) cannot take it, and the search says so instead of sampling wrong."""
    from eacps.nodes import noise_sources as ns
    from eacps.search.pool import SearchError

    samplers = importlib.import_module("comfy.samplers")
    sample = importlib.import_module("comfy.sample")
    tiny = importlib.import_module(comfy.nodes.NODE_CLASS_MAPPINGS["EACPSTest_TinyModel"].__module__).tiny
    ran = []

    class PackSampler(samplers.Sampler):
        def sample(self, *args, **kwargs):
            ran.append(True)
            raise AssertionError("the wrapper must refuse before this sampler runs")

    model = ns.for_candidates(tiny.tiny_model(0), "euler_ancestral", [1, 2])
    latent = torch.zeros(2, 4, 8, 8)
    with pytest.raises(SearchError) as err:
        sample.sample_custom(model, torch.randn(2, 4, 8, 8), CFG, PackSampler(), torch.tensor([14.6, 3.0, 0.0]),
                             tiny.text_conditioning("a red apple"), tiny.text_conditioning(""), latent, seed=1)
    assert str(err.value) == ("expected ComfyUI's KSAMPLER for euler_ancestral, got PackSampler; "
                              "this ComfyUI differs from 0.3.75: set max_sub_batch to 1")
    assert ran == []


def test_the_reasons_a_sampler_runs_one_candidate_at_a_time_are_told_in_full(comfy):
    """The report's setup.one_at_a_time tells the user why a search ran slower than its sub-batch."""
    from eacps.nodes import noise_sources as ns

    assert ns.one_at_a_time_reason("dpm_adaptive") == (
        "dpm_adaptive chooses its step sizes from an error norm over the whole batch, so a candidate's steps "
        "would depend on the other candidates in its sub-batch")
    assert ns.one_at_a_time_reason("ddim", has_noise_mask=True) == (
        "ddim with a noise mask draws its inpainting noise over the whole batch from one generator (seed + 1), "
        "so a candidate's result would depend on its sub-batch")
    assert ns.one_at_a_time_reason("my_pack_sampler") == (
        "my_pack_sampler is not a sampler of ComfyUI 0.3.75 that this pack has checked for batch independence, so "
        "it runs one candidate at a time")
    assert ns.one_at_a_time_reason("ddim") is None and ns.one_at_a_time_reason("euler_ancestral") is None
