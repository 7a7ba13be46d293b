"""Stage 1 and stage 2 sampling nodes, and the two stages they share with the one-node searches.

A stage asks its strategy for proposals and runs them through search/stage.py's driver on the
local runner (nodes/runner.py: ComfyUI's own ``comfy.sample.sample``, the KSampler path, in
sub-batches, each candidate with its own recipe's noise stacked into the batch, decoded with the
given VAE, cost counted). One ProgressBar covers candidates x steps.

Batch independence: every candidate's result equals a stock batch-1 run with its seed (a stock
KSampler for plain seeds, SamplerCustomAdvanced with our NOISE output for any candidate) within
float tolerance, whatever its sub-batch. Deterministic samplers need nothing for that;
noise-injecting ones (ancestral, SDE, ddpm, lcm, ...) get per-candidate per-step noise from
``noise_sources.for_candidates``. Samplers that cannot be made batch-invariant
(``noise_sources.one_at_a_time_reason``) run one candidate per call with ``seed`` = its seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import comfy.sample
import comfy.samplers
import torch
from comfy_api.latest import io

from ..search.halving import Screening, SuccessiveHalving
from ..search.pool import Pool, SearchError
from ..search.stage import run_stage
from ..search.stopping import StopRule
from ..search.strategy import (
    GlobalExploration,
    LocalRefinement,
    check_anneal,
    check_count,
    check_mode,
    check_seed,
    check_strength,
    stage_rng,
)
from . import noise_sources
from .checks import first_error
from .compute import check_compute, compute_inputs, compute_options, screen_evaluator, screen_inputs
from .remote import make_runner
from .runner import Progress, decode, decode_problem  # noqa: F401  (decode: selection.py uses it)
from .types import Candidates
from .workers import with_workers, workers_input


@dataclass(frozen=True)
class SamplingSetup:
    """Everything stage 2 needs to sample exactly like stage 1."""

    model: Any
    positive: Any
    negative: Any
    latent: dict  # batch-1 template, channels fixed as the KSampler fixes them
    seed: int
    steps: int
    cfg: float
    sampler_name: str
    scheduler: str
    denoise: float
    vae: Any
    max_sub_batch: int
    workers: Any = None  # remote.Workers: other instances that sample a share (None: all here)
    graph: Any = None  # remote.FeedingGraph: the graph feeding stage 1, rebuilt on workers

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return tuple(self.latent["samples"].shape)

    @property
    def one_at_a_time(self) -> str | None:
        """Why this sampler runs one candidate per call, or None when it runs in sub-batches."""
        return noise_sources.one_at_a_time_reason(self.sampler_name, self.latent.get("noise_mask") is not None)

    @property
    def sub_batch(self) -> int:
        return 1 if self.one_at_a_time else self.max_sub_batch

    def describe(self) -> dict:
        return {
            "seed": self.seed, "steps": self.steps, "cfg": self.cfg, "sampler_name": self.sampler_name,
            "scheduler": self.scheduler, "denoise": self.denoise, "latent_shape": list(self.noise_shape),
            "max_sub_batch": self.max_sub_batch, "sub_batch_used": self.sub_batch,
            "one_at_a_time": self.one_at_a_time,
            **({"workers": self.workers.describe()} if self.workers is not None else {}),
        }

    @property
    def instances(self) -> int:
        """How many instances sample at once (this one and its workers)."""
        if self.workers is None:
            return 1
        return len(self.workers.urls) + int(self.workers.include_local)


def prepare_latent(model, latent: dict) -> dict:
    samples = latent["samples"]
    if getattr(samples, "is_nested", False):
        raise SearchError("nested (multi-part) latents are not supported; search one plain latent at a time")
    if samples.shape[0] != 1:
        raise SearchError(
            f"the latent has a batch of {samples.shape[0]}: EACPS searches one image at a time. Use a "
            "batch of 1 (e.g. Empty Latent Image with batch_size 1); K_global sets how many candidates run"
        )
    if "batch_index" in latent:
        raise SearchError(
            "the latent carries a batch_index (from Latent From Batch / Repeat Latent Batch), which changes "
            "which noise a seed gives; connect a plain batch-1 latent instead"
        )
    out = {k: v for k, v in latent.items()}
    out["samples"] = comfy.sample.fix_empty_latent_channels(model, samples)
    return out


def global_stage(setup: SamplingSetup, k_global: int, progress: Progress | None = None, evaluate=None,
                 screening: Screening | None = None, stop: StopRule | None = None) -> Pool:
    """Stage 1: K_global plain seeds, candidate 0 = the user's seed; the RNG is seeded by (seed, 0).
    ``evaluate`` (pool -> scored pool), ``screening`` and ``stop``: see search/stage.py."""
    strategy = GlobalExploration(k_global, setup.seed, stage_rng(setup.seed, 0))
    pool = Pool(setup=setup, k_global=int(k_global))
    if progress is None:
        progress = Progress(SuccessiveHalving(k_global, setup.steps, screening or Screening()).planned_steps())
    return run_stage(pool, strategy.ask(), None, make_runner(setup, progress), evaluate, screening, stop,
                     setup.sub_batch * setup.instances)


def refine_stage(pool: Pool, k_local: int, mode: str, strength: float, anneal: float,
                 progress: Progress | None = None, evaluate=None, screening: Screening | None = None,
                 stop: StopRule | None = None) -> Pool:
    """Stage 2, one round: K_local children per elite; round r's RNG is seeded by (seed, r)."""
    round_index = len(pool.rounds) + 1
    strategy = LocalRefinement(k_local, mode, strength, anneal, stage_rng(pool.setup.seed, round_index))
    proposals, round_ = strategy.ask(pool)
    if progress is None:
        progress = Progress(SuccessiveHalving(len(proposals), pool.setup.steps, screening or Screening()).planned_steps())
    return run_stage(pool, proposals, round_, make_runner(pool.setup, progress), evaluate, screening, stop,
                     pool.setup.sub_batch * pool.setup.instances)


class SeedSearchGlobal(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_SeedSearchGlobal",
            display_name="EACPS Seed Search (global)",
            category="EACPS",
            description=(
                "Stage 1 of EACPS: samples K_global candidates with the KSampler inputs and decodes them. "
                "Candidate 0 uses your seed, so a stock KSampler with that seed gives candidate 0 exactly. "
                "Candidates run in sub-batches of up to max_sub_batch, each with its own per-step noise for "
                "ancestral/SDE samplers, so each result is independent of its batch (dpm_adaptive, and ddim "
                "with a noise mask, run one at a time). The latent must be a batch of 1."
            ),
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model, as for a KSampler."),
                io.Conditioning.Input("positive", tooltip="Positive conditioning."),
                io.Conditioning.Input("negative", tooltip="Negative conditioning."),
                io.Latent.Input("latent_image", tooltip="The starting latent; batch of 1."),
                io.Vae.Input("vae", tooltip="Decodes every candidate for the verifiers."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Candidate 0's seed (the plain KSampler result); also seeds the search's RNG."),
                io.Int.Input("k_global", default=8, min=1, max=4096,
                             tooltip="K_global: number of global candidates (plain seeds)."),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Sampling steps per candidate."),
                io.Float.Input("cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, tooltip="Sampler."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, tooltip="Scheduler."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip="Denoise, as for a KSampler."),
                io.Int.Input("max_sub_batch", default=8, min=1, max=4096,
                             tooltip="Most candidates per sampler call (memory cap). Results do not depend on it."),
                *compute_inputs(),
                *screen_inputs(),
                workers_input(),
            ],
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
            outputs=[
                Candidates.Output(display_name="candidates", tooltip="The candidate pool (carries the sampling setup)."),
                io.Image.Output(display_name="images", tooltip="Every candidate's decoded image, in candidate order."),
            ],
        )

    @classmethod
    def validate_inputs(cls, seed, k_global, steps, max_sub_batch, denoise, sampler_name=None, scheduler=None,
                        stop_at_potential=0.0, plateau=0, max_nfe=0, prune_steps="", prune_keep=0.5,
                        prune_kind="chain"):
        compute = dict(stop_at_potential=stop_at_potential, plateau=plateau, max_nfe=max_nfe,
                       prune_steps=prune_steps, prune_keep=prune_keep, prune_kind=prune_kind)
        return first_error(
            (check_compute, steps, compute),
            None if sampler_name is None else (check_choice, "sampler_name", sampler_name, comfy.samplers.KSampler.SAMPLERS),
            None if scheduler is None else (check_choice, "scheduler", scheduler, comfy.samplers.KSampler.SCHEDULERS),
            None if seed is None else (check_seed, seed),
            None if k_global is None else (check_count, "k_global", k_global, "the number of global candidates"),
            None if steps is None else (check_count, "steps", steps, "the number of sampling steps"),
            None if max_sub_batch is None else (check_count, "max_sub_batch", max_sub_batch, "the sub-batch cap"),
            None if denoise is None else (_check_denoise, denoise),
        )

    @classmethod
    def execute(cls, model, positive, negative, latent_image, vae, seed, k_global, steps, cfg, sampler_name,
                scheduler, denoise, max_sub_batch, screen_verifier=None, screen_weights="", screen_prompt="",
                workers=None, **compute) -> io.NodeOutput:
        check = cls.validate_inputs(seed, k_global, steps, max_sub_batch, denoise, sampler_name, scheduler, **compute)
        if check is not True:
            raise SearchError(check)
        screening, stop = compute_options(steps, **compute)
        evaluate = screen_evaluator(screen_verifier, screen_prompt, screen_weights, screening, stop)
        setup = with_workers(make_setup(model, positive, negative, latent_image, vae, seed, steps, cfg, sampler_name,
                                        scheduler, denoise, max_sub_batch), workers, cls.hidden)
        pool = global_stage(setup, k_global, None, evaluate, screening, stop)
        return io.NodeOutput(pool, torch.cat([c.image for c in pool.candidates]))


def make_setup(model, positive, negative, latent_image, vae, seed, steps, cfg, sampler_name, scheduler, denoise,
               max_sub_batch) -> SamplingSetup:
    return SamplingSetup(
        model=model, positive=positive, negative=negative, latent=prepare_latent(model, latent_image),
        seed=int(seed), steps=int(steps), cfg=float(cfg), sampler_name=sampler_name, scheduler=scheduler,
        denoise=float(denoise), vae=vae, max_sub_batch=int(max_sub_batch),
    )


def check_choice(name: str, value, options) -> None:
    """ComfyUI 0.3.75 does not check V3 combo values, and its KSampler silently swaps an unknown
    sampler or scheduler for the first one: refuse it instead."""
    if value not in options:
        raise SearchError(f"{name} = {value!r} is not one of this ComfyUI's: {', '.join(map(str, options))}")


def _check_denoise(denoise) -> None:
    if not (0.0 < float(denoise) <= 1.0):
        raise SearchError(f"denoise = {denoise}: use a value in (0, 1] (0 would not sample at all)")


class LocalSeedRefine(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_LocalSeedRefine",
            display_name="EACPS Local Seed Refine",
            category="EACPS",
            description=(
                "Stage 2 of EACPS: K_local children around each elite of the pool (mark elites with "
                "EliteSelect first), sampled with the pool's own sampling setup. Chain it again after "
                "another Score -> Potential -> EliteSelect for more generations: round r uses the radius "
                "strength * anneal^(r-1)."
            ),
            inputs=[
                Candidates.Input("candidates", tooltip="A pool with elites marked by EliteSelect."),
                io.Int.Input("k_local", default=4, min=1, max=4096, tooltip="K_local: children per elite."),
                io.Combo.Input("mode", options=["slerp", "sphere", "seed_offset"], default="slerp",
                               tooltip=(
                                   "slerp: variation noise towards a new seed by 'strength'. sphere: a point at "
                                   "exactly cos(strength*90deg) cosine from the elite, same norm. seed_offset: "
                                   "the paper's elite_seed + j; adjacent seeds are independent noise, so this "
                                   "is equivalent to fresh draws (strength unused)."
                               )),
                io.Float.Input("strength", default=0.6, min=0.0, max=1.0, step=0.01,
                               tooltip="Neighbourhood radius in (0, 1]: 0.1 is very close (cosine ~0.99), 1 a "
                                       "fresh direction. A loose 0.6 did best in our measurements."),
                io.Float.Input("anneal", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="Radius factor per extra refinement generation (1 keeps it constant)."),
                *compute_inputs(),
                *screen_inputs(),
                workers_input(),
            ],
            outputs=[
                Candidates.Output(display_name="candidates", tooltip="The grown pool."),
                io.Image.Output(display_name="images", tooltip="The new children's images, in candidate order (pruned "
                                                               "ones show their preview; a round that adaptive "
                                                               "stopping left unspent gives every candidate's)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, k_local, mode, strength, anneal, stop_at_potential=0.0, plateau=0, max_nfe=0,
                        prune_steps="", prune_keep=0.5, prune_kind="chain"):
        compute = dict(stop_at_potential=stop_at_potential, plateau=plateau, max_nfe=max_nfe,
                       prune_steps=prune_steps, prune_keep=prune_keep, prune_kind=prune_kind)
        return first_error(
            (check_compute, None, compute),
            None if k_local is None else (check_count, "k_local", k_local, "the number of children per elite"),
            None if mode is None else (check_mode, mode),
            None if strength is None or mode == "seed_offset" else (check_strength, strength, mode or "slerp"),
            None if anneal is None else (check_anneal, anneal),
        )

    @classmethod
    def execute(cls, candidates, k_local, mode, strength, anneal, screen_verifier=None, screen_weights="",
                screen_prompt="", workers=None, **compute) -> io.NodeOutput:
        pool: Pool = candidates
        check = cls.validate_inputs(k_local, mode, strength, anneal, **compute)
        if check is not True:
            raise SearchError(check)
        if workers is not None:
            pool = replace(pool, setup=with_workers(pool.setup, workers, None))
        screening, stop = compute_options(pool.setup.steps, **compute)
        evaluate = screen_evaluator(screen_verifier, screen_prompt, screen_weights, screening, stop)
        grown = refine_stage(pool, k_local, mode, strength, anneal, None, evaluate, screening, stop)
        new = grown.candidates[len(pool):] or grown.candidates  # a round left unspent: every candidate
        return io.NodeOutput(grown, torch.cat([c.image for c in new]))


NODES = (SeedSearchGlobal, LocalSeedRefine)
