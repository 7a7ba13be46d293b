"""The local runner on the tiny models, against ComfyUI's stock KSampler: continued chains, x0
previews, and counted model evaluations."""

from __future__ import annotations

import sys

import pytest
import torch

pytestmark = pytest.mark.host

STEPS = 6


@pytest.fixture(scope="module")
def parts(comfy):
    tiny = sys.modules[comfy.nodes.NODE_CLASS_MAPPINGS["EACPSTest_TinyModel"].__module__].tiny
    return {
        "model": tiny.tiny_model(0), "vae": tiny.tiny_vae(0), "pos": tiny.text_conditioning("a red apple"),
        "neg": tiny.text_conditioning(""), "latent": {"samples": torch.zeros(1, 4, 8, 8)},
    }


def setup_for(parts, sampler_name="euler", cfg=5.0, max_sub_batch=8, steps=STEPS):
    from eacps.nodes.sampling import make_setup

    return make_setup(parts["model"], parts["pos"], parts["neg"], parts["latent"], parts["vae"], 7, steps, cfg,
                      sampler_name, "normal", 1.0, max_sub_batch)


def stock_ksampler(comfy, parts, seed, sampler_name, cfg=5.0, steps=STEPS):
    (out,) = comfy.nodes.common_ksampler(parts["model"], seed, steps, cfg, sampler_name, "normal", parts["pos"],
                                         parts["neg"], parts["latent"])
    return out["samples"]


def run(setup, tasks):
    from eacps.nodes.runner import LocalRunner

    return LocalRunner(setup).run(tasks)


def task(seed, start, stop, state=None, decode="final", steps=STEPS):
    from eacps.search.noise import NoiseRecipe
    from eacps.search.stage import Task

    return Task(NoiseRecipe(seed), start, stop, steps, state=state, decode=decode)


def test_a_chain_continued_from_its_saved_state_equals_the_stock_ksampler(comfy, parts):
    sampler_name = "euler"
    setup = setup_for(parts, sampler_name)
    seeds = [3, 11, 12345]
    first, _ = run(setup, [task(s, 0, 2, decode="x0") for s in seeds])
    middle, _ = run(setup, [task(s, 2, 4, o.state, decode="x0") for s, o in zip(seeds, first, strict=True)])
    last, _ = run(setup, [task(s, 4, STEPS, o.state) for s, o in zip(seeds, middle, strict=True)])
    for s, o in zip(seeds, last, strict=True):
        torch.testing.assert_close(o.state, stock_ksampler(comfy, parts, s, sampler_name), atol=1e-4, rtol=1e-5)


def test_which_samplers_continue_exactly_is_what_comfy_does(comfy, parts):
    """SPLIT_EXACT lists samplers whose split run equals the stock unsplit run; multistep samplers
    keep history and differ after a split (a sample of each kind: every sampler would cost minutes)."""
    from eacps.nodes.runner import SPLIT_EXACT

    names = {"heun", "dpm_2", "ddim", "dpmpp_2m", "uni_pc"}
    exact = set()
    for name in sorted(names):
        setup = setup_for(parts, name)
        (a,), _ = run(setup, [task(3, 0, 3, decode="none")])
        (b,), _ = run(setup, [task(3, 3, STEPS, a.state)])
        if torch.allclose(b.state, stock_ksampler(comfy, parts, 3, name), atol=1e-4, rtol=1e-5):
            exact.add(name)
    assert exact == set(SPLIT_EXACT) & names


def test_the_x0_preview_is_decoded_from_the_vae_space(parts):
    """Euler's last step lands on its x0 prediction, so the x0 preview of a full run must equal the
    decoded final latent; without process_latent_out it would be off by the 0.18215 latent scale."""
    setup = setup_for(parts)
    (final,), _ = run(setup, [task(5, 0, STEPS)])
    (preview,), _ = run(setup, [task(5, 0, STEPS, decode="x0")])
    torch.testing.assert_close(preview.image, final.image, atol=1e-4, rtol=0)
    assert preview.image.shape == (1, 64, 64, 3)


def test_model_evaluations_are_counted_not_estimated(parts):
    from eacps.search.stage import Task  # noqa: F401  (the interface under test)

    # euler: one denoiser call per step; cond and uncond share it (batched by ComfyUI on this host)
    outs, cost = run(setup_for(parts, max_sub_batch=4), [task(s, 0, STEPS) for s in range(6)])
    assert [o.nfe for o in outs] == [STEPS] * 6
    assert cost.calls == 2 * STEPS  # two sub-batches (4 + 2)
    assert cost.nfe == 6 * STEPS and cost.passes == 2 * 6 * STEPS and cost.cfg_batched is True
    assert cost.steps == 6 * STEPS and cost.decodes == 6
    # heun: two evaluations per step except the last (its step to sigma 0 is an euler step)
    outs, cost = run(setup_for(parts, "heun"), [task(1, 0, STEPS)])
    assert outs[0].nfe == 2 * STEPS - 1 and cost.calls == 2 * STEPS - 1
    # cfg 1: ComfyUI skips the uncond pass
    outs, cost = run(setup_for(parts, cfg=1.0), [task(1, 0, STEPS)])
    assert cost.passes == STEPS and cost.cfg_batched is False
    # a continued chain costs only its own steps
    (a,), _ = run(setup_for(parts), [task(1, 0, 2, decode="x0")])
    (b,), cost = run(setup_for(parts), [task(1, 2, STEPS, a.state)])
    assert a.nfe == 2 and b.nfe == STEPS - 2 and cost.steps == STEPS - 2


def test_a_masked_latent_cannot_continue_a_chain(parts):
    from eacps.nodes.sampling import make_setup
    from eacps.search.pool import SearchError

    latent = {"samples": torch.zeros(1, 4, 8, 8), "noise_mask": torch.ones(1, 1, 8, 8)}
    setup = make_setup(parts["model"], parts["pos"], parts["neg"], latent, parts["vae"], 7, STEPS, 5.0, "euler",
                       "normal", 1.0, 8)
    (a,), _ = run(setup, [task(1, 0, 2, decode="x0")])
    with pytest.raises(SearchError, match="preview"):
        run(setup, [task(1, 2, STEPS, a.state)])
