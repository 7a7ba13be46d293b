"""EACPS_Search (the whole two-stage search in one node) and EACPS_BestOfN (the equal-budget baseline).

Both are thin: they call the very functions the five-node graph's nodes call (``global_stage``,
``refine_stage``, ``score_pool``, ``apply_weights``, ``select_best``) in the same order, so the one
node gives the same candidates, potentials and winner as SeedSearchGlobal -> VerifierScore ->
WeightedPotential -> EliteSelect(M) -> LocalSeedRefine -> ... -> EliteSelect(1) with the same
settings. One progress bar covers every candidate x step of the search.
"""

from __future__ import annotations

import torch
from comfy_api.latest import io, ui

from ..search.grid import render_grid
from ..search.halving import SuccessiveHalving
from ..search.pool import Pool, SearchError
from ..search.potential import parse_weights
from ..search.strategy import check_anneal, check_count, check_mode, check_strength
from .checks import first_error
from .compute import BEST_OF_N_PRUNE_STEPS, check_compute, compute_inputs, compute_options, needs_scoring
from .sampling import Progress, SeedSearchGlobal, global_stage, make_setup, refine_stage
from .saving import keep_sampled
from .scoring import apply_weights, score_pool, verifier_info
from .selection import select_best
from .types import Verifier as VerifierSocket
from .workers import with_workers, workers_input

VERIFIER_SLOTS = ("verifier_1", "verifier_2", "verifier_3", "verifier_4")
DEFAULT_WEIGHTS = "sharpness=1.0\nexposure=1.0"


def _sampling_inputs() -> list:
    """The KSampler inputs + VAE, as SeedSearchGlobal declares them (one definition, one set of tooltips)."""
    wanted = ("model", "positive", "negative", "latent_image", "vae", "seed", "steps", "cfg", "sampler_name",
              "scheduler", "denoise")
    by_id = {i.id: i for i in SeedSearchGlobal.define_schema().inputs}
    return [by_id[name] for name in wanted]


def _verifier_inputs() -> list:
    return [
        VerifierSocket.Input("verifier_1", tooltip="A loaded verifier (Load ... Verifier (EACPS))."),
        *[VerifierSocket.Input(name, optional=True, tooltip="Another verifier (optional).") for name in VERIFIER_SLOTS[1:]],
    ]


def _scoring_inputs() -> list:
    return [
        io.String.Input("weights", multiline=True, default=DEFAULT_WEIGHTS,
                        tooltip="name=weight pairs over the verifiers' aspect names (as WeightedPotential): "
                                "U = sum weight * score, each score on [0, 10]."),
        io.String.Input("prompt", multiline=True, default="",
                        tooltip="The text the images should match, for the verifiers."),
        io.Int.Input("max_sub_batch", default=8, min=1, max=4096,
                     tooltip="Most candidates per sampler call (memory cap). Results do not depend on it."),
        io.Image.Input("reference", optional=True,
                       tooltip="Reference image (edit input / identity source) for verifiers that use one."),
        workers_input(),
    ]


def _outputs() -> list:
    return [
        io.Image.Output(display_name="image", tooltip="The best candidate's image."),
        io.Latent.Output(display_name="latent", tooltip="The best candidate's final latent."),
        io.Noise.Output(display_name="noise", tooltip="The best candidate's starting noise (for SamplerCustomAdvanced)."),
        io.Int.Output(display_name="seed", tooltip="The best candidate's seed."),
        io.Image.Output(display_name="grid", tooltip="Every candidate, labelled; winner green, elites orange."),
        io.String.Output(display_name="report", tooltip="JSON: every candidate, its scores, and the budget."),
    ]


def _connected(kwargs: dict) -> list:
    verifiers = [kwargs.get(name) for name in VERIFIER_SLOTS]
    verifiers = [v for v in verifiers if v is not None]
    if not verifiers:
        raise SearchError("connect at least one verifier to 'verifier_1'")
    return verifiers


def check_before_sampling(verifiers: list, weights: str, prompt: str, reference) -> None:
    """Refuse, before any sampling, weights naming aspects no connected verifier produces, the same
    verifier connected twice, a verifier that needs a reference without one, and a reference that is
    not one image."""
    infos = [verifier_info(v, prompt, reference) for v in verifiers]
    seen: set[str] = set()
    for info in infos:
        if info.identity in seen:
            raise SearchError(f"{info.identity} is connected twice; connect each verifier once")
        seen.add(info.identity)
    for v in verifiers:
        if v.requires_reference and reference is None:
            raise SearchError(f"{v.identity} needs a reference image: connect one to 'reference'")
        if v.uses_reference and reference is not None and (reference.ndim != 4 or reference.shape[0] != 1
                                                           or reference.shape[-1] not in (3, 4)):
            raise SearchError(f"{v.identity} compares with one reference image, but 'reference' has shape "
                              f"{list(reference.shape)}; connect a single image (batch of 1)")
    names = Pool(setup=None, k_global=1, verifiers=tuple(infos)).score_names()
    unknown = [n for n in parse_weights(weights) if n not in names]
    if unknown:
        raise SearchError(
            f"weights name {unknown}, which none of the connected verifiers produce; available: "
            f"{', '.join(sorted(names))}"
        )


def _evaluator(verifiers: list, prompt: str, reference, weights: str, progress: Progress | None = None):
    """pool -> the pool with every unscored, unpruned candidate scored by each verifier, and potentials;
    scoring moves ``progress`` (the search's bar) one unit per candidate and verifier."""

    def evaluate(pool: Pool) -> Pool:
        for v in verifiers:
            pool = score_pool(pool, v, prompt, reference, progress)
        return apply_weights(pool, weights)

    return evaluate


def _result(cls, pool: Pool, progress: Progress) -> io.NodeOutput:
    marked, image, latent, noise, seed, report = select_best(pool, 1)
    grid = render_grid(marked, marked.selection.ids[0])
    # With live previews on, the last latent preview would otherwise stay on the node instead of
    # the output grid: make the grid the node's last preview.
    progress.update(progress.total, _grid_preview(grid))
    return io.NodeOutput(image, latent, noise, seed, grid, report, ui=ui.PreviewImage(grid, cls=cls))


def _grid_preview(grid: torch.Tensor):
    """ComfyUI's preview tuple for the grid [1, H, W, 3], or None when previews are off."""
    from comfy.cli_args import LatentPreviewMethod, args
    from PIL import Image

    if args.preview_method == LatentPreviewMethod.NoPreviews:
        return None
    pixels = (grid[0] * 255).round().to(torch.uint8).cpu().numpy()  # render_grid's 8-bit canvas / 255
    return "PNG", Image.fromarray(pixels), None  # None: at its own size


def _check_widgets(seed=None, steps=None, denoise=None, max_sub_batch=None, weights=None, sampler_name=None,
                   scheduler=None, **counts) -> bool | str:
    """The checks of the widgets a node's validate_inputs names (ComfyUI skips its own min/max checks
    for those): SeedSearchGlobal's for the sampling widgets (k_global=1 stands in: checked below)."""
    checks = SeedSearchGlobal.validate_inputs(seed, 1, steps, max_sub_batch, denoise, sampler_name, scheduler)
    if checks is not True:
        return checks
    for name, value in counts.items():
        if value is not None:
            msg = first_error((check_count, name, value, f"'{name}'"))
            if msg is not True:
                return msg
    return first_error(None if weights is None else (parse_weights, weights))


def _prepare(check, hidden, workers, verifier_inputs, weights, prompt, reference, *sampling):
    """What both one-node searches do before sampling: the widget checks (``check``, the node's
    validate_inputs result), the connected verifiers and their weights, the sampling setup."""
    if check is not True:
        raise SearchError(check)
    verifiers = _connected(dict(zip(VERIFIER_SLOTS, verifier_inputs, strict=True)))
    check_before_sampling(verifiers, weights, prompt, reference)
    return verifiers, with_workers(make_setup(*sampling), workers, hidden)


def _check_survivors(n: int, m: int | None, steps, compute: dict) -> bool | str:
    """With screening, at least M candidates of the global stage must finish to choose M elites."""
    if n is None or m is None or steps is None or any(v is None for v in compute.values()):
        return True
    try:
        screening, _ = compute_options(steps, **compute)
    except SearchError as e:
        return str(e)
    left = SuccessiveHalving(n, steps, screening).planned_survivors()
    if left < m:
        return (f"pruning keeps {left} of the K_global = {n} global candidates, fewer than M = {m} elites: "
                "raise prune_keep or K_global, or lower M")
    return True


class Search(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_Search",
            display_name="EACPS Search (one node)",
            category="EACPS",
            description=(
                "The whole EACPS search in one node: K_global plain seeds (candidate 0 = your seed), then "
                "for each generation the top M by potential get K_local children each (mode/strength; the "
                "radius shrinks by 'anneal' per extra generation); the best of all N = K_global + "
                "generations * M * K_local candidates wins. Same results as the five-node graph with the "
                "same settings. Outputs the winner, a labelled grid of every candidate and a JSON report."
            ),
            inputs=[
                *_sampling_inputs(),
                *_verifier_inputs(),
                io.Int.Input("k_global", default=8, min=1, max=4096, tooltip="K_global: global candidates (plain seeds)."),
                io.Int.Input("m", default=3, min=1, max=4096, tooltip="M: elites kept after each scoring round (<= K_global)."),
                io.Int.Input("k_local", default=4, min=1, max=4096, tooltip="K_local: children per elite."),
                io.Combo.Input("mode", options=["slerp", "sphere", "seed_offset"], default="slerp",
                               tooltip="slerp: variation noise towards a new seed by 'strength'. sphere: exactly "
                                       "cos(strength*90deg) cosine from the elite. seed_offset: the paper's seed + j, "
                                       "equivalent to fresh draws (adjacent seeds are unrelated noise)."),
                io.Float.Input("strength", default=0.6, min=0.0, max=1.0, step=0.01,
                               tooltip="Neighbourhood radius in (0, 1]: 0.1 very close, 1 a fresh direction."),
                io.Int.Input("generations", default=1, min=1, max=64,
                             tooltip="Refinement generations (elite selection + children), each after a scoring round."),
                io.Float.Input("anneal", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="Radius factor per extra generation (1 keeps it constant)."),
                *_scoring_inputs(),
                *compute_inputs(),
            ],
            outputs=_outputs(),
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, seed=None, steps=None, denoise=None, max_sub_batch=None, weights=None, k_global=None,
                        m=None, k_local=None, generations=None, mode=None, strength=None, anneal=None,
                        sampler_name=None, scheduler=None, stop_at_potential=0.0, plateau=0, max_nfe=0,
                        prune_steps="", prune_keep=0.5, prune_kind="chain"):
        # No **kwargs here: ComfyUI then skips its own min/max checks of every input.
        msg = _check_widgets(seed, steps, denoise, max_sub_batch, weights, sampler_name, scheduler, k_global=k_global,
                             m=m, k_local=k_local, generations=generations)
        if msg is not True:
            return msg
        if m is not None and k_global is not None and m > k_global:
            return f"M = {m} elites, but only K_global = {k_global} global candidates; use M <= K_global"
        compute = dict(stop_at_potential=stop_at_potential, plateau=plateau, max_nfe=max_nfe,
                       prune_steps=prune_steps, prune_keep=prune_keep, prune_kind=prune_kind)
        msg = first_error(
            None if mode is None else (check_mode, mode),
            None if strength is None or mode == "seed_offset" else (check_strength, strength, mode or "slerp"),
            None if anneal is None else (check_anneal, anneal),
            (check_compute, steps, compute),
        )
        return msg if msg is not True else _check_survivors(k_global, m, steps, compute)

    @classmethod
    def execute(cls, model, positive, negative, latent_image, vae, seed, steps, cfg, sampler_name, scheduler,
                denoise, verifier_1, k_global, m, k_local, mode, strength, generations, anneal, weights, prompt,
                max_sub_batch, reference=None, verifier_2=None, verifier_3=None, verifier_4=None,
                workers=None, **compute) -> io.NodeOutput:
        check = cls.validate_inputs(seed=seed, steps=steps, denoise=denoise, max_sub_batch=max_sub_batch,
                                    weights=weights, k_global=k_global, m=m, k_local=k_local,
                                    generations=generations, mode=mode, strength=strength, anneal=anneal,
                                    sampler_name=sampler_name, scheduler=scheduler, **compute)
        verifiers, setup = _prepare(check, cls.hidden, workers, (verifier_1, verifier_2, verifier_3, verifier_4), weights, prompt,
                                    reference, model, positive, negative, latent_image, vae, seed, steps, cfg,
                                    sampler_name, scheduler, denoise, max_sub_batch)
        screening, stop = compute_options(setup.steps, **compute)
        plan = lambda n: SuccessiveHalving(n, setup.steps, screening).planned_steps()  # noqa: E731
        n_all = k_global + generations * m * k_local
        # One bar: every planned sampler step, and one unit per candidate and verifier scoring it.
        progress = Progress(plan(k_global) + generations * plan(m * k_local) + n_all * len(verifiers))
        evaluate = _evaluator(verifiers, prompt, reference, weights, progress)
        during = evaluate if needs_scoring(screening, stop) else None
        with keep_sampled() as box:  # on an error or Cancel, what was sampled is saved
            box.pool = global_stage(setup, k_global, progress, during, screening, stop)
            for _ in range(generations):
                if box.pool.stopped:  # the refinement rounds never start
                    box.pool = box.pool.stop(box.pool.stopped, m * k_local)
                    continue
                box.pool = select_best(evaluate(box.pool), m)[0]
                box.pool = refine_stage(box.pool, k_local, mode, strength, anneal, progress, during, screening, stop)
            return _result(cls, evaluate(box.pool), progress)


class BestOfN(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_BestOfN",
            display_name="EACPS Best of N",
            category="EACPS",
            description=(
                "N independent plain seeds (your seed and N - 1 drawn as SeedSearchGlobal draws them), "
                "scored by the same verifiers and weights; the best wins. By default it screens: all N "
                "start, and the better half (by the verifiers on the x0 preview) goes on at 25% and again "
                "at 50% of the steps, so N = 40 costs what 20 full samples cost; candidates are then "
                "numbered in the order they finish, and your seed may be pruned. Clear "
                "prune_steps for the plain best-of-N baseline (then give it the same N as an EACPS search, "
                "K_global + generations * M * K_local, for an equal-budget comparison)."
            ),
            inputs=[
                *_sampling_inputs(),
                *_verifier_inputs(),
                io.Int.Input("n", default=40, min=1, max=4096,
                             tooltip="N: independent candidates started. With the default screening a quarter "
                                     "of them finish: N = 40 costs 20 full samples."),
                *_scoring_inputs(),
                *compute_inputs(BEST_OF_N_PRUNE_STEPS),
            ],
            outputs=_outputs(),
            hidden=[io.Hidden.prompt, io.Hidden.unique_id],
        )

    @classmethod
    def validate_inputs(cls, seed=None, steps=None, denoise=None, max_sub_batch=None, weights=None, n=None,
                        sampler_name=None, scheduler=None, stop_at_potential=0.0, plateau=0, max_nfe=0,
                        prune_steps=BEST_OF_N_PRUNE_STEPS, prune_keep=0.5, prune_kind="chain"):
        msg = _check_widgets(seed, steps, denoise, max_sub_batch, weights, sampler_name, scheduler, n=n)
        compute = dict(stop_at_potential=stop_at_potential, plateau=plateau, max_nfe=max_nfe,
                       prune_steps=BEST_OF_N_PRUNE_STEPS if prune_steps is None else prune_steps,
                       prune_keep=prune_keep, prune_kind=prune_kind)
        return msg if msg is not True else first_error((check_compute, steps, compute))

    @classmethod
    def execute(cls, model, positive, negative, latent_image, vae, seed, steps, cfg, sampler_name, scheduler,
                denoise, verifier_1, n, weights, prompt, max_sub_batch, reference=None, verifier_2=None,
                verifier_3=None, verifier_4=None, workers=None, **compute) -> io.NodeOutput:
        if compute.get("prune_steps") is None:  # left out (an API prompt, an older workflow): the default
            compute["prune_steps"] = BEST_OF_N_PRUNE_STEPS
        check = cls.validate_inputs(seed=seed, steps=steps, denoise=denoise, max_sub_batch=max_sub_batch,
                                    weights=weights, n=n, sampler_name=sampler_name, scheduler=scheduler, **compute)
        verifiers, setup = _prepare(check, cls.hidden, workers, (verifier_1, verifier_2, verifier_3, verifier_4), weights, prompt,
                                    reference, model, positive, negative, latent_image, vae, seed, steps, cfg,
                                    sampler_name, scheduler, denoise, max_sub_batch)
        screening, stop = compute_options(setup.steps, **compute)
        progress = Progress(SuccessiveHalving(n, setup.steps, screening).planned_steps() + n * len(verifiers))
        evaluate = _evaluator(verifiers, prompt, reference, weights, progress)
        with keep_sampled() as box:  # on an error or Cancel, what was sampled is saved
            box.pool = global_stage(setup, n, progress, evaluate if needs_scoring(screening, stop) else None, screening,
                                    stop)
            return _result(cls, evaluate(box.pool), progress)


NODES = (Search, BestOfN)
