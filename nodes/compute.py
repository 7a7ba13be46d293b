"""The compute options every search node shares: adaptive stopping, an NFE budget and screening
(successive halving on the denoising chain, or short preview runs). One definition of the widgets,
their tooltips and their checks. Defaults switch everything off, so a search runs as before."""

from __future__ import annotations

from comfy_api.latest import io

from ..search.halving import KINDS, Screening, parse_rungs
from ..search.pool import SearchError
from ..search.stopping import StopRule

NAMES = ("stop_at_potential", "plateau", "max_nfe", "prune_steps", "prune_keep", "prune_kind")

# EACPS_BestOfN's default screening: every candidate starts, the better half is kept at a quarter and
# at half of the steps. With n = 40 it costs what 20 full samples cost, and it was the best
# configuration at that budget on the quality benchmark (README, "Spending compute").
BEST_OF_N_PRUNE_STEPS = "25%, 50%"


def compute_inputs(prune_steps: str = "") -> list:
    """Optional widgets (after every existing input, so saved workflows keep their values).
    ``prune_steps``: the node's default screening (empty: off)."""
    return [
        io.Float.Input("stop_at_potential", default=0.0, min=0.0, max=1e6, step=0.1, optional=True,
                       tooltip="Adaptive stopping: stop the search once a candidate's potential reaches this "
                               "(0: off). Checked between sub-batches; the unspent candidates are reported."),
        io.Int.Input("plateau", default=0, min=0, max=4096, optional=True,
                     tooltip="Adaptive stopping: stop once the best has not improved over this many finished "
                             "candidates (0: off). Checked between sub-batches."),
        io.Int.Input("max_nfe", default=0, min=0, max=10**9, optional=True,
                     tooltip="Budget in model evaluations (NFE: denoiser calls per candidate, summed; one "
                             "full candidate = about 'steps' NFE for euler, 2*steps-1 for heun). The search "
                             "does not start a sub-batch that would exceed it (0: no budget)."),
        io.String.Input("prune_steps", default=prune_steps, optional=True,
                        tooltip="Successive halving: the steps at which candidates are scored and the worse "
                                "ones dropped, e.g. '4' or '4, 10', or fractions of the steps, '25%, 50%' "
                                "(empty: off). Every candidate starts; only the kept fraction finishes."),
        io.Float.Input("prune_keep", default=0.5, min=0.01, max=0.99, step=0.01, optional=True,
                       tooltip="Fraction of candidates kept at each pruning step (rounded up, at least one)."),
        io.Combo.Input("prune_kind", options=list(KINDS), default="chain", optional=True,
                       tooltip="chain: score the decoded x0 prediction after prune_steps steps and continue "
                               "the kept candidates from where they are (no step is repeated). preview: a "
                               "separate short run of prune_steps steps of the same noise, then a full run "
                               "of the kept ones."),
    ]


def compute_options(steps: int, stop_at_potential=0.0, plateau=0, max_nfe=0, prune_steps="", prune_keep=0.5,
                    prune_kind="chain") -> tuple[Screening, StopRule]:
    """The widgets as a Screening and a StopRule; raises SearchError saying what to change. None (an
    optional input left out) means the default."""
    prune_keep = 0.5 if prune_keep is None else prune_keep
    prune_kind = "chain" if prune_kind is None else prune_kind
    screening = Screening(rungs=parse_rungs(prune_steps or "", int(steps)), keep=float(prune_keep), kind=prune_kind)
    screening.check(int(steps))
    target = float(stop_at_potential or 0.0)
    if target < 0:
        raise SearchError(f"stop_at_potential = {target}: use a potential > 0, or 0 for off")
    stop = StopRule(target=target or None, plateau=int(plateau or 0), max_nfe=float(max_nfe) if max_nfe else None)
    return screening, stop


def check_compute(steps, values: dict) -> None:
    """validate_inputs form: None values (linked or absent inputs) are skipped."""
    given = {k: v for k, v in values.items() if v is not None}
    if steps is None and given.get("prune_steps"):
        return
    compute_options(steps or 10**9, **given)


def needs_scoring(screening: Screening, stop: StopRule) -> bool:
    return screening.active or stop.needs_scores


def screen_inputs() -> list:
    """The five-node graph's stages have no verifiers of their own: one for screening and stopping."""
    from .types import Verifier as VerifierSocket

    return [
        VerifierSocket.Input("screen_verifier", optional=True,
                             tooltip="The verifier that scores previews (pruning) and finished candidates "
                                     "(adaptive stopping) inside this node. Needed only for those options."),
        io.String.Input("screen_weights", default="", multiline=True, optional=True,
                        tooltip="name=weight pairs over screen_verifier's aspects for the screening potential "
                                "(empty: every aspect, weight 1)."),
        io.String.Input("screen_prompt", default="", multiline=True, optional=True,
                        tooltip="The text the screen verifier scores against (use the prompt of your "
                                "VerifierScore nodes, so its scores of finished candidates are reused)."),
    ]


def screen_evaluator(verifier, prompt: str, weights: str, screening: Screening, stop: StopRule):
    """pool -> pool scored by the screen verifier, with the screening potential; None when unused.
    Raises SearchError when screening or stopping is asked for without a screen verifier."""
    from .scoring import apply_weights, score_pool, verifier_info

    if not needs_scoring(screening, stop):
        return None
    if verifier is None:
        raise SearchError(
            "pruning (prune_steps) and adaptive stopping (stop_at_potential, plateau) score candidates inside "
            "this node: connect a verifier to 'screen_verifier'"
        )
    verifier_info(verifier, prompt or "", None)
    text = (weights or "").strip() or ", ".join(f"{a}=1" for a in verifier.aspects)

    def evaluate(pool):
        return apply_weights(score_pool(pool, verifier, prompt or "", None), text)

    return evaluate
