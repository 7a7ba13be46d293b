"""Per-candidate per-step noise, so noise-injecting samplers run candidates in sub-batches.

How ComfyUI 0.3.75 injects per-step noise (comfy/k_diffusion/sampling.py): every noise-injecting
k-diffusion sampler takes a ``noise_sampler(sigma, sigma_next)`` keyword and, without one, builds
its own from the sampler call's ``seed`` (a stock KSampler's noise seed; SamplerCustomAdvanced's
``noise.seed``):

- ``default_noise_sampler(x, seed)``: one ``torch.Generator`` on ``x.device`` seeded once per call;
  each call returns ``randn(x.shape)`` over the whole batch. In a batch, element i would get a
  slice of one shared stream: its result would depend on its batch.
- ``BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed, cpu)`` (the dpmpp_*sde family): a
  torchsde Brownian tree over [min positive sigma, max sigma] of the call's sigmas; it accepts a
  list of seeds, one tree per batch element.

A candidate's per-step noise here is exactly what a stock batch-1 run with the candidate's seed
draws: ``for_candidates`` returns a clone of the model whose SAMPLER_SAMPLE wrapper (the host's
wrapper hook around ``KSAMPLER.sample``) hands the sampler function a ``noise_sampler`` built from
the sub-batch's seeds, from the very ``x`` and ``sigmas`` the sampler receives:

- default family: one generator per candidate, on ``x.device``, seeded with the candidate's seed;
  each call returns the concatenation of every candidate's next ``randn`` of shape ``[1, *x[0]]``
  (same dtype, layout, device as ``x``): the draw order of each candidate is its batch-1 order;
- Brownian family: the host's own ``BrownianTreeNoiseSampler`` with the list of seeds and the
  ``cpu`` flag of the sampler (the ``*_gpu`` variants build the tree on ``x``'s device).

Step ranges: the sources are built per sampler call, as the host builds its own. A run split
with ``start_step``/``last_step`` therefore equals a stock split run (KSamplerAdvanced with the
same steps range and noise seed): the default generators restart at the split, and the Brownian
tree spans the range's own sigmas. Neither equals the unsplit run, just as in stock ComfyUI.

Samplers that cannot be made batch-invariant keep running one candidate per call
(``ONE_AT_A_TIME``, with the reason that the report's setup carries).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import comfy.patcher_extension
import comfy.samplers
import torch
from comfy.k_diffusion.sampling import BrownianTreeNoiseSampler

from ..search.pool import SearchError

# Batch-invariant without help: no per-step noise (or noise multiplied by 0: dpm_fast runs with
# eta 0), and nothing computed across the batch. Their results equal one-at-a-time results
# within float tolerance.
DETERMINISTIC = frozenset({
    "euler", "euler_cfg_pp", "heun", "heunpp2", "dpm_2", "lms", "dpm_fast", "dpmpp_2m", "dpmpp_2m_cfg_pp",
    "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "gradient_estimation",
    "gradient_estimation_cfg_pp", "ddim", "uni_pc", "uni_pc_bh2",
})
# Draw from default_noise_sampler(x, seed) unless given a noise_sampler.
DEFAULT_NOISE = frozenset({
    "euler_ancestral", "euler_ancestral_cfg_pp", "dpm_2_ancestral", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "ddpm", "lcm",
    "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece",
})
# Draw from BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed, cpu) unless given one; value: cpu.
BROWNIAN = {
    "dpmpp_sde": True, "dpmpp_sde_gpu": False, "dpmpp_2m_sde": True, "dpmpp_2m_sde_gpu": False,
    "dpmpp_2m_sde_heun": True, "dpmpp_2m_sde_heun_gpu": False, "dpmpp_3m_sde": True, "dpmpp_3m_sde_gpu": False,
}
ONE_AT_A_TIME = {
    "dpm_adaptive": "dpm_adaptive chooses its step sizes from an error norm over the whole batch, so a "
                    "candidate's steps would depend on the other candidates in its sub-batch",
}
# ddim is euler plus, for inpainting only, a fresh starting noise drawn over the whole batch from
# torch.manual_seed(seed + 1) (comfy.samplers.sampler_object's inpaint option "random").
DDIM_WITH_MASK = ("ddim with a noise mask draws its inpainting noise over the whole batch from one "
                  "generator (seed + 1), so a candidate's result would depend on its sub-batch")
UNKNOWN = ("{name} is not a sampler of ComfyUI 0.3.75 that this pack has checked for batch "
           "independence, so it runs one candidate at a time")

_WRAPPER_KEY = "eacps_per_candidate_noise"


def one_at_a_time_reason(sampler_name: str, has_noise_mask: bool = False) -> str | None:
    """Why ``sampler_name`` must run one candidate per sampler call, or None when sub-batches give
    every candidate exactly its batch-1 result (deterministic samplers, and the noise-injecting
    ones through ``for_candidates``)."""
    if sampler_name in ONE_AT_A_TIME:
        return ONE_AT_A_TIME[sampler_name]
    if sampler_name == "ddim" and has_noise_mask:
        return DDIM_WITH_MASK
    if sampler_name in DETERMINISTIC or sampler_name in DEFAULT_NOISE or sampler_name in BROWNIAN:
        return None
    return UNKNOWN.format(name=sampler_name)


class PerCandidateNoise:
    """``noise_sampler(sigma, sigma_next)`` for a sub-batch: element i of every call is candidate
    i's next draw from its own generator, seeded as ``default_noise_sampler(x[i:i+1], seed_i)``
    seeds it for a batch-1 run.

    x: the sampler's state [B, ...] (any dtype/device); seeds: B ints in [0, 2^64 - 1].
    Returns [B, ...] tensors of x's dtype, layout and device. The sigmas are ignored, as the host's
    default noise sampler ignores them."""

    def __init__(self, x: torch.Tensor, seeds: Sequence[int]):
        if len(seeds) != x.shape[0]:
            raise SearchError(f"{len(seeds)} seeds for a sub-batch of {x.shape[0]} candidates")
        self.shape = (1, *x.shape[1:])
        self.dtype, self.layout, self.device = x.dtype, x.layout, x.device
        self.generators = []
        for seed in seeds:
            gen = torch.Generator(device=x.device)
            gen.manual_seed(int(seed))
            self.generators.append(gen)

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        return torch.cat([
            torch.randn(self.shape, dtype=self.dtype, layout=self.layout, device=self.device, generator=gen)
            for gen in self.generators
        ])


def brownian_noise(x: torch.Tensor, sigmas: torch.Tensor, seeds: Sequence[int], cpu: bool) -> BrownianTreeNoiseSampler:
    """The host's Brownian-tree noise with one tree per candidate, over the interval the dpmpp_*sde
    samplers use (comfy/k_diffusion/sampling.py: min positive sigma to max sigma of the call)."""
    sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
    return BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=[int(s) for s in seeds], cpu=cpu)


def _make_source(sampler_name: str, seeds: Sequence[int]) -> Callable[[torch.Tensor, torch.Tensor], Any]:
    if sampler_name in DEFAULT_NOISE:
        return lambda x, sigmas: PerCandidateNoise(x, seeds)
    cpu = BROWNIAN[sampler_name]
    return lambda x, sigmas: brownian_noise(x, sigmas, seeds, cpu)


def _with_noise_sampler(sampler_function, make_source):
    def sampler_function_with_noise(model, x, sigmas, *args, **kwargs):
        if kwargs.get("noise_sampler") is not None:
            raise SearchError("the sampler already has a noise_sampler; EACPS cannot give each candidate its own")
        if len(sigmas) > 1:  # with one sigma the samplers return x untouched (and build nothing)
            kwargs["noise_sampler"] = make_source(x, sigmas)
        return sampler_function(model, x, sigmas, *args, **kwargs)

    return sampler_function_with_noise


def for_candidates(model, sampler_name: str, seeds: Sequence[int]):
    """The model to sample a sub-batch with, so candidate i (seed ``seeds[i]``) draws the per-step
    noise of a stock batch-1 run with that seed.

    Deterministic samplers, and a single candidate, get ``model`` itself (the host's own noise is
    then already right). Noise-injecting samplers get a clone (weights shared) carrying a
    SAMPLER_SAMPLE wrapper. Raises SearchError for a sampler in ``ONE_AT_A_TIME`` or unknown here
    when given more than one seed."""
    seeds = [int(s) for s in seeds]
    if len(seeds) == 1 or sampler_name in DETERMINISTIC:
        return model
    if sampler_name not in DEFAULT_NOISE and sampler_name not in BROWNIAN:
        raise SearchError(f"{sampler_name} cannot run candidates in sub-batches: "
                          f"{one_at_a_time_reason(sampler_name) or 'no per-candidate noise source'}")
    make_source = _make_source(sampler_name, seeds)

    def wrapper(executor, *args, **kwargs):
        sampler = executor.class_obj
        if not isinstance(sampler, comfy.samplers.KSAMPLER):
            raise SearchError(f"expected ComfyUI's KSAMPLER for {sampler_name}, got {type(sampler).__name__}; "
                              "this ComfyUI differs from 0.3.75: set max_sub_batch to 1")
        original = sampler.sampler_function
        sampler.sampler_function = _with_noise_sampler(original, make_source)
        try:
            return executor(*args, **kwargs)
        finally:
            sampler.sampler_function = original

    clone = model.clone()
    clone.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, _WRAPPER_KEY, wrapper)
    return clone
