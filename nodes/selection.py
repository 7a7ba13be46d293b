"""EACPS_EliteSelect: marks the top M, outputs the best candidate in core sockets, and the report."""

from __future__ import annotations

import torch
from comfy_api.latest import io

from ..search.grid import render_grid
from ..search.noise import NoiseRecipe, make_noise
from ..search.pool import Pool, SearchError
from ..search.report import report_json
from ..search.strategy import check_count, select_elites
from .checks import first_error
from .sampling import decode
from .types import Candidates


class RecipeNoise:
    """A NOISE for SamplerCustomAdvanced that gives one candidate's exact starting noise.

    ``seed`` is the candidate's own seed: ancestral/SDE samplers draw their per-step noise from it,
    as the search drew that candidate's (nodes/noise_sources.py)."""

    def __init__(self, recipe: NoiseRecipe, shape: tuple[int, ...]):
        self.recipe = recipe
        self.seed = recipe.seed
        self.shape = tuple(shape)

    def generate_noise(self, input_latent):
        samples = input_latent["samples"]
        if "batch_index" in input_latent:
            raise SearchError("this NOISE reproduces one search candidate; use a plain latent without batch_index")
        if tuple(samples.shape) != self.shape:
            raise SearchError(
                f"this NOISE reproduces a search candidate of latent shape {list(self.shape)}, but the latent "
                f"has shape {list(samples.shape)}; use the same (batch-1) latent as the search"
            )
        return make_noise(self.recipe, self.shape, samples.dtype)


def select_best(pool: Pool, m: int) -> tuple:
    """Mark the top M; return (pool, best image, latent, NOISE, seed, report JSON)."""
    check_count("m", m, "the number of elites")
    elites = select_elites(pool, int(m))
    marked = pool.with_elites(elites)
    best = marked.get(elites[0])
    setup = marked.setup
    latent = {k: v for k, v in setup.latent.items() if k != "batch_index"}
    latent["samples"] = best.latent.clone()
    noise = RecipeNoise(best.recipe, setup.noise_shape)
    report = report_json(marked, best.id, setup.describe())
    return marked, winner_image(setup, best), latent, noise, int(best.seed), report


def winner_image(setup, best) -> torch.Tensor:
    """The winner's image as a stock VAEDecode of its latent gives it. A candidate decoded inside a
    sub-batch can differ from its batch-1 decode (the conv kernels depend on the batch shape; a VAE
    whose raw output is far outside [0, 1] then flips a clamped pixel from 0 to 1), so such a winner
    is decoded once more, alone."""
    if dict(best.timings).get("sub_batch", 1.0) <= 1.0:
        return best.image.clone()
    return decode(setup.vae, best.latent)


class EliteSelect(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_EliteSelect",
            display_name="EACPS Elite Select",
            category="EACPS",
            description=(
                "Marks the top M candidates by potential as elites (ties: lower candidate id) for "
                "LocalSeedRefine, and outputs the best candidate: its IMAGE, LATENT, a NOISE that reproduces "
                "it in SamplerCustomAdvanced (children included), its seed (a stock KSampler with this seed "
                "reproduces it only for a plain-seed candidate), a JSON report of every candidate and a labelled grid of "
                "every candidate (winner green, elites orange)."
            ),
            inputs=[
                Candidates.Input("candidates", tooltip="A pool with potentials (WeightedPotential)."),
                io.Int.Input("m", default=3, min=1, max=4096, tooltip="M: number of elites to keep."),
            ],
            outputs=[
                Candidates.Output(display_name="candidates", tooltip="The pool with elites marked."),
                io.Image.Output(display_name="image", tooltip="The best candidate's image."),
                io.Latent.Output(display_name="latent", tooltip="The best candidate's final latent."),
                io.Noise.Output(display_name="noise", tooltip="The best candidate's starting noise (for SamplerCustomAdvanced)."),
                io.Int.Output(display_name="seed", tooltip="The best candidate's seed."),
                io.String.Output(display_name="report", tooltip="JSON: every candidate, its scores, and the budget."),
                io.Image.Output(display_name="grid", tooltip="Every candidate, labelled; winner green, elites orange."),
            ],
        )

    @classmethod
    def validate_inputs(cls, m):
        return first_error(None if m is None else (check_count, "m", m, "the number of elites"))

    @classmethod
    def execute(cls, candidates, m) -> io.NodeOutput:
        marked, *best = select_best(candidates, m)
        return io.NodeOutput(marked, *best, render_grid(marked, marked.selection.ids[0]))


NODES = (EliteSelect,)
