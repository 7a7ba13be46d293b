"""EACPS_VerifierScore and EACPS_WeightedPotential: thin adapters over search/ and verifiers/."""

from __future__ import annotations

import hashlib
import math
import time

import comfy.model_management
import torch
from comfy_api.latest import io

from ..search.budget import Ledger
from ..search.pool import Pool, SearchError, VerifierInfo
from ..search.potential import compute_potentials, parse_weights
from ..verifiers import protocol
from .checks import first_error
from .sampling import Progress
from .saving import keep_sampled
from .types import Candidates
from .types import Verifier as VerifierSocket


def _context(verifier, prompt: str, reference: torch.Tensor | None) -> str:
    h = hashlib.sha256(prompt.encode())
    if verifier.uses_reference and reference is not None:
        ref = reference.detach().to("cpu", torch.float32).contiguous()
        h.update(str(tuple(ref.shape)).encode())
        h.update(ref.numpy().tobytes())
    return h.hexdigest()


def verifier_info(verifier, prompt: str, reference: torch.Tensor | None) -> VerifierInfo:
    """What the pool records about a verifier. Any object providing the verifier protocol
    (verifiers/protocol.py) is accepted, from this pack or another; anything else is refused with
    a SearchError naming what it lacks."""
    try:
        protocol.check_verifier(verifier)
    except protocol.VerifierError as e:
        raise SearchError(str(e)) from e
    cut = verifier.prompt_cut(prompt) if hasattr(verifier, "prompt_cut") else None  # optional in the protocol
    return VerifierInfo(verifier.identity, verifier.kind, tuple(verifier.aspects), _context(verifier, prompt, reference),
                        note=cut)


def score_pool(pool: Pool, verifier, prompt: str, reference: torch.Tensor | None = None,
               progress: Progress | None = None) -> Pool:
    """Score every valid candidate this verifier has not scored under this prompt/reference, in calls
    of the pool's sampling sub-batch (``max_sub_batch``), so the progress bar moves while scoring:
    ``progress`` (the search's bar) advances one unit per candidate scored; without one, scoring shows
    its own bar. A candidate whose image is not finite, or that gets a non-finite score, is marked
    invalid (ranked out, reason in report and grid) instead of failing the search; messages name
    candidate ids, never batch positions."""
    comfy.model_management.throw_exception_if_processing_interrupted()  # Cancel between verifiers
    info = verifier_info(verifier, prompt, reference)
    old = pool.verifier(info.identity)
    fresh = old is not None and old.context != info.context
    todo = [c for c in pool.candidates if c.valid and not c.pruned and (fresh or not c.scored_by(info.identity))]
    broken = {c.id: "its decoded image has non-finite pixels" for c in todo if not torch.isfinite(c.image).all()}
    if broken:
        pool = pool.with_invalid(broken)
        todo = [c for c in todo if c.id not in broken]
    if not todo:
        if old is not None and not fresh:
            return pool  # nothing to score: the very pool, so ComfyUI's cache and callers see no change
        return pool.with_scores(info, {}, {})  # joins the pool even when no valid candidate is left
    progress = progress or Progress(len(todo))
    chunk = pool.setup.max_sub_batch if pool.setup is not None else len(todo)
    scores, seconds, bad = {}, {}, {}
    cost = Ledger()
    for start in range(0, len(todo), chunk):
        comfy.model_management.throw_exception_if_processing_interrupted()  # Cancel between verifier batches
        part = todo[start:start + chunk]
        t0 = time.perf_counter()
        try:
            result = protocol.score(verifier, torch.cat([c.image for c in part]), prompt, reference)
        except protocol.NonFiniteScores as e:
            result = e.result
        spent = time.perf_counter() - t0
        cost += Ledger(verifier_calls=1, verifier_images=len(part), scoring_s=spent)
        for i, c in enumerate(part):
            values = {a: float(result.scores[a][i]) for a in info.aspects}
            nonfinite = [a for a, v in values.items() if not math.isfinite(v)]
            if nonfinite:
                bad[c.id] = f"{info.identity} gave a non-finite '{nonfinite[0]}' score ({values[nonfinite[0]]})"
            else:
                scores[c.id] = values
                seconds[c.id] = spent / len(part)
        progress.advance(len(part))
    return pool.with_invalid(bad).with_scores(info, scores, seconds).spend(cost)


def apply_weights(pool: Pool, weights: str) -> Pool:
    w = parse_weights(weights)
    return pool.with_potentials(compute_potentials(pool, w), w)


class VerifierScore(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_VerifierScore",
            display_name="EACPS Verifier Score",
            category="EACPS",
            description=(
                "Scores every candidate of the pool that this verifier has not scored yet (scores are cached "
                "per candidate and verifier; a changed prompt or reference re-scores all). All unscored "
                "images go to the verifier in one call. Each aspect is a score on [0, 10]."
            ),
            inputs=[
                Candidates.Input("candidates", tooltip="The candidate pool."),
                VerifierSocket.Input("verifier", tooltip="A loaded verifier (Load ... Verifier (EACPS))."),
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="The text the images should match (verifiers that ignore text ignore it)."),
                io.Image.Input("reference", optional=True,
                               tooltip="Reference image (edit input / identity source) for verifiers that use one."),
            ],
            outputs=[Candidates.Output(display_name="candidates", tooltip="The pool with this verifier's scores.")],
        )

    @classmethod
    def execute(cls, candidates, verifier, prompt, reference=None) -> io.NodeOutput:
        with keep_sampled() as box:  # the pool's candidates are saved if scoring fails
            box.pool = candidates
            return io.NodeOutput(score_pool(candidates, verifier, prompt, reference))


class WeightedPotential(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_WeightedPotential",
            display_name="EACPS Weighted Potential",
            category="EACPS",
            description=(
                "U = sum of weight * score over named scores (each on [0, 10]). Write name=weight pairs, one "
                "per line or comma-separated ('realism=4.0, consistency=1.0' or 'clip_score: 1.0'). A score "
                "name is the verifier's aspect, or '<kind>.<aspect>' when two verifiers share an aspect."
            ),
            inputs=[
                Candidates.Input("candidates", tooltip="A scored pool."),
                io.String.Input("weights", multiline=True, default="sharpness=1.0\nexposure=1.0",
                                tooltip="name=weight pairs; weights >= 0, at least one > 0."),
            ],
            outputs=[Candidates.Output(display_name="candidates", tooltip="The pool with potentials.")],
        )

    @classmethod
    def validate_inputs(cls, weights):
        return first_error(None if weights is None else (parse_weights, weights))

    @classmethod
    def execute(cls, candidates, weights) -> io.NodeOutput:
        return io.NodeOutput(apply_weights(candidates, weights))


NODES = (VerifierScore, WeightedPotential)
