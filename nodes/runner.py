"""The local runner: runs search/stage.py's Tasks on this ComfyUI through ``comfy.sample.sample``
(the KSampler path), in sub-batches, and counts what they cost.

- Noise: a task starting at step 0 gets its recipe's noise, stacked into the sub-batch; a task
  starting at step a > 0 continues the chain from its saved latent with zero added noise and the
  same sigmas (``start_step=a``), exactly as two chained stock KSamplerAdvanced nodes do (first one
  with "return_with_leftover_noise"). For single-step deterministic samplers (``SPLIT_EXACT``) a
  continued chain equals the uninterrupted run; multistep samplers (dpmpp_2m, uni_pc, lms, deis,
  ipndm, ...) restart their history at the split, so a continued chain differs slightly from a
  stock run of its seed (measured in bench/split_drift.py); ancestral/SDE samplers restart their
  per-step noise there.
- x0 previews: ComfyUI's sampler callback hands out the denoiser's x0 prediction in the model's
  internal latent space; ``model.model.process_latent_out`` brings it to the space the VAE decodes
  (the SD1.5 0.18215 scale), otherwise a decoded preview is washed out and its scores meaningless.
  The preview of a run over [a, b) is the x0 predicted at the last step run, b - 1: it costs no
  extra model evaluation.
- NFE: a clone of the model patcher with a ``model_function_wrapper`` (chained onto any the user's
  model already has) counts every denoiser call and the candidates whose rows it carried; see
  search/budget.py for the units.
- Progress: one ComfyUI ProgressBar over every candidate x step of the search; the callback sends
  previews and checks Cancel at every step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import comfy.model_management
import comfy.sample
import comfy.utils
import latent_preview
import torch

from ..search.budget import Ledger
from ..search.noise import make_noise
from ..search.pool import SearchError
from ..search.stage import DECODES, Outcome, Task
from . import noise_sources

# Samplers whose state is only x: a run split at any step equals the unsplit run (tested against a
# stock KSampler in tests/host/test_runner.py).
SPLIT_EXACT = frozenset({"euler", "euler_cfg_pp", "heun", "dpm_2", "ddim"})


class Progress:
    """One ComfyUI progress bar over ``total`` units (sampler steps, and candidates scored where a
    search counts them), shared by every sampling and scoring call of a search (the one-node search
    runs several stages under one bar)."""

    def __init__(self, total: int):
        self.total = int(total)
        self.done = 0
        self.pbar = comfy.utils.ProgressBar(self.total)

    def update(self, done: int, preview=None) -> None:
        self.pbar.update_absolute(min(self.total, done), self.total, preview)

    def advance(self, units: int, preview=None) -> None:
        """Count ``units`` more of work that is not a sampler step (e.g. candidates scored)."""
        self.done += int(units)
        self.update(self.done, preview)


@dataclass
class _Counter:
    calls: int = 0
    candidate_calls: float = 0.0  # sum over calls of the candidates whose rows the call carried
    passes: float = 0.0  # sum over calls of rows (candidates x conds)
    max_conds: int = 0  # most conds (cond, uncond) one call carried: > 1 means CFG was batched


def counting_model(model, counter: _Counter):
    """A clone of the ModelPatcher ``model`` whose denoiser calls are counted into ``counter``."""
    patched = model.clone()
    inner = patched.model_options.get("model_function_wrapper")

    def wrapper(apply_model, args):
        rows = int(args["input"].shape[0])
        conds = max(1, len(args.get("cond_or_uncond") or (0,)))
        counter.calls += 1
        counter.candidate_calls += rows / conds
        counter.passes += rows
        counter.max_conds = max(counter.max_conds, conds)
        if inner is not None:
            return inner(apply_model, args)
        return apply_model(args["input"], args["timestep"], **args["c"])

    patched.set_model_unet_function_wrapper(wrapper)
    return patched


def decode(vae, samples: torch.Tensor) -> torch.Tensor:
    """VAE-decode latents as the stock VAEDecode node does -> IMAGE [B, H, W, 3] float32 on the CPU."""
    with torch.inference_mode():  # as ComfyUI runs nodes; also when called outside a prompt
        images = vae.decode(samples)
    if images.ndim == 5:
        if images.shape[1] != 1:
            raise SearchError(f"the VAE decoded {images.shape[1]} frames per candidate; EACPS searches single images")
        images = images[:, 0]
    return images.to("cpu", torch.float32)


def decode_problem(image: torch.Tensor, latent: torch.Tensor) -> str | None:
    """Why a sampled candidate cannot compete (non-finite latent or pixels), or None."""
    bad_latent = int((~torch.isfinite(latent)).sum())
    if bad_latent:
        return (f"the sampler produced {bad_latent} non-finite latent values (NaN/inf): the model diverged "
                "(cfg too high, or fp16 overflow: try --bf16-unet / --fp32-unet)")
    bad_pixels = int((~torch.isfinite(image)).sum())
    if bad_pixels:
        return (f"the VAE decoded {bad_pixels} non-finite pixel values (NaN/inf), as fp16 VAEs do at some sizes: "
                "use an fp32 or bf16 VAE (ComfyUI --fp32-vae or --bf16-vae)")
    return None


class LocalRunner:
    """Runs Tasks with ``setup`` (nodes/sampling.py SamplingSetup) on this ComfyUI.

    run(tasks) groups tasks that share (start, stop, steps, decode) into sub-batches of
    ``setup.sub_batch`` (one sampler call each) and returns one Outcome per task, in task order,
    with a Ledger of the call's cost."""

    def __init__(self, setup, progress: Progress | None = None):
        self.setup = setup
        self.progress = progress
        self.counter = _Counter()
        self.model = counting_model(setup.model, self.counter)
        self.previewer = latent_preview.get_previewer(setup.model.load_device, setup.model.model.latent_format)

    def run(self, tasks: list[Task]) -> tuple[list[Outcome], Ledger]:
        parts = self.sub_batches(tasks)
        return self.gather(tasks, parts, [self.run_part(tasks, key, part) for key, part in parts])

    def sub_batches(self, tasks: list[Task]) -> list[tuple[tuple, list[int]]]:
        """Checks the tasks and cuts them into sub-batches: (start, stop, steps, decode) and the
        indices of at most ``setup.sub_batch`` tasks sharing it, one sampler call each."""
        groups: dict[tuple, list[int]] = {}
        for i, t in enumerate(tasks):
            if t.decode not in DECODES:
                raise SearchError(f"decode = {t.decode!r}: use one of {DECODES}")
            if not (0 <= t.start < t.stop <= t.steps):
                raise SearchError(f"task steps [{t.start}, {t.stop}) outside a schedule of {t.steps} steps")
            if t.start and t.state is None:
                raise SearchError(f"a task starting at step {t.start} needs the latent saved there")
            groups.setdefault((t.start, t.stop, t.steps, t.decode), []).append(i)
        if self.progress is None:
            self.progress = Progress(sum(t.stop - t.start for t in tasks))
        b = self.setup.sub_batch
        return [(key, idx[begin:begin + b]) for key, idx in groups.items() for begin in range(0, len(idx), b)]

    def run_part(self, tasks: list[Task], key: tuple, part: list[int]) -> tuple[list[Outcome], Ledger]:
        return self._chunk([tasks[i] for i in part], *key)

    @staticmethod
    def gather(tasks, parts, results) -> tuple[list[Outcome], Ledger]:
        """One Outcome per task in task order, and the summed Ledger, from each part's results."""
        outcomes: list[Outcome | None] = [None] * len(tasks)
        ledger = Ledger()
        for (_, part), (got, cost) in zip(parts, results, strict=True):
            ledger += cost
            for i, o in zip(part, got, strict=True):
                outcomes[i] = o
        return outcomes, ledger

    def _chunk(self, chunk: list[Task], start: int, stop: int, steps: int, what: str) -> tuple[list[Outcome], Ledger]:
        s = self.setup
        template = s.latent["samples"]
        n = len(chunk)
        noise_mask = s.latent.get("noise_mask")
        if start:
            if noise_mask is not None:
                raise SearchError(
                    "chain screening cannot continue a masked (inpainting) latent: ComfyUI re-noises the "
                    "unmasked part from the start noise every step; use prune_kind 'preview' instead"
                )
            latent_image = torch.cat([t.state for t in chunk]).to(template.dtype)
            noise = torch.zeros_like(latent_image)
        else:
            noise = torch.cat([make_noise(t.recipe, s.noise_shape, template.dtype) for t in chunk])
            latent_image = template.repeat((n,) + (1,) * (template.ndim - 1))
        progress, previewer, last_x0 = self.progress, self.previewer, {}
        done = progress.done

        def callback(step, x0, x, total_steps):
            comfy.model_management.throw_exception_if_processing_interrupted()
            last_x0["x0"] = x0
            preview = previewer.decode_latent_to_preview_image("JPEG", x0) if previewer else None
            progress.update(done + (step + 1) * n, preview)

        before = (self.counter.calls, self.counter.candidate_calls, self.counter.passes)
        t0 = time.perf_counter()
        model = noise_sources.for_candidates(self.model, s.sampler_name, [t.recipe.seed for t in chunk])
        samples = comfy.sample.sample(
            model, noise, steps, s.cfg, s.sampler_name, s.scheduler, s.positive, s.negative, latent_image,
            denoise=s.denoise, noise_mask=noise_mask, callback=callback, disable_pbar=True, seed=chunk[0].recipe.seed,
            start_step=start or None, last_step=stop if stop < steps else None, force_full_denoise=False,
        )
        t1 = time.perf_counter()
        comfy.model_management.throw_exception_if_processing_interrupted()
        images = None
        if what == "final":
            images = decode(s.vae, samples)
        elif what == "x0":
            if "x0" not in last_x0:
                raise SearchError("the sampler reported no x0 prediction to preview; use prune_kind 'preview'")
            x0 = self.model.model.process_latent_out(last_x0["x0"]).to(comfy.model_management.intermediate_device())
            images = decode(s.vae, x0)
        t2 = time.perf_counter()
        samples = samples.to("cpu")
        calls = self.counter.calls - before[0]
        nfe = (self.counter.candidate_calls - before[1]) / n
        passes = self.counter.passes - before[2]
        progress.done = done + n * (stop - start)
        progress.update(progress.done)
        share = (("sample", (t1 - t0) / n), ("decode", (t2 - t1) / n), ("sub_batch", float(n)))
        outcomes = []
        for i in range(n):
            state = samples[i:i + 1].clone()
            image = None if images is None else images[i:i + 1].clone()
            invalid = decode_problem(image if image is not None else state, state)
            if invalid is None and what == "x0":
                invalid = decode_problem(image, x0[i:i + 1].to("cpu"))
            outcomes.append(Outcome(state=state, image=image, nfe=nfe, seconds=share, invalid=invalid))
        cost = Ledger(calls=calls, nfe=nfe * n, passes=passes, steps=n * (stop - start),
                      decodes=0 if images is None else n, sampling_s=t1 - t0, decoding_s=t2 - t1,
                      cfg_batched=self.counter.max_conds > 1 if calls else None)
        return outcomes, cost
